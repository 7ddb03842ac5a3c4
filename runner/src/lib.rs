//! The std side of EcoEdge: the simulator board and its device models, workloads,
//! metrics and reports, and the `ecoedge` command's subcommands.
//!
//! Policy lives in `ecoedge-core`; this crate supplies clocks, boards and I/O
//! around it, thin in the manner of `quinn` around `quinn-proto`.

pub mod apply;
pub mod cmd;
pub mod compare;
pub mod device;
pub mod host;
pub mod inference;
pub mod metrics;
pub mod plots;
pub mod report;
pub mod service;
pub mod sim;
pub mod units;
pub mod workload;
