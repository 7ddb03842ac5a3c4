//! The std side of EcoEdge: real Linux boards and the service loop, the
//! simulator board and its device models, workloads, the paper's comparison,
//! reports, and the `ecoedge` command's subcommands.
//!
//! Policy lives in `ecoedge-core`; this crate supplies clocks, boards and I/O
//! around it, thin in the manner of `quinn` around `quinn-proto`. Its modules
//! form a one-way graph, checked by `tests/module_graph.rs` (each imports only
//! those to its right, transitively):
//!
//! | module | holds | imports |
//! |---|---|---|
//! | `cmd` | argument parsing and printing; nothing else imports it | any |
//! | [`serve`] | `ecoedge serve`: KServe v2 over HTTP and Prometheus metrics around the service loop | service, board, inference, record, report, capacity |
//! | [`profiling`] | measuring a device profile on a real board: the configs sampled, each measured | service, sim, report, board, inference, knobs, units |
//! | [`compare`] | the paper's comparison: phases, results, tables, plots | sim, report, metrics, record |
//! | [`service`] | the real-time service loop and the library API | board, inference, knobs, record, workload |
//! | [`sim`] | the simulator board, device models, oracle | knobs, metrics, record, workload |
//! | [`device`] | device and DNN names on the command line | sim |
//! | [`report`] | the summary JSON; the logs of a kept run | board, knobs, logs, record |
//! | [`record`] | [`record::Recorder`]: one run's requests, windows, refusals, kept (simulator) or streamed (service) | logs, metrics, served |
//! | [`logs`] | `requests.csv` and `windows.csv`, written row by row | knobs, served |
//! | [`metrics`] | per-request cost figures of a set of requests, in fixed memory | served |
//! | [`served`] | one served request | |
//! | [`board`] | real Linux boards (Jetson, host): meter and clock knobs | knobs |
//! | [`knobs`] | `--knobs`, lower limits, the one knob-space builder, applying a config, configs in physical units | |
//! | [`inference`] | the `Engine` trait over plain tensors, tract and ONNX Runtime | |
//! | [`workload`] | arrival processes | units |
//! | [`units`], [`capacity`] | durations on the command line; queue and batch capacities | |

pub mod board;
pub mod capacity;
pub mod cmd;
pub mod compare;
pub mod device;
pub mod inference;
pub mod knobs;
pub mod logs;
pub mod metrics;
pub mod profiling;
pub mod record;
pub mod report;
pub mod serve;
pub mod served;
pub mod service;
pub mod sim;
pub mod units;
pub mod workload;
