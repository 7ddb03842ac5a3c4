//! One module per subcommand: argument parsing and output; the work lives elsewhere.

pub mod board;
pub mod compare;
pub mod engine;
pub mod measure;
pub mod output;
pub mod profile;
pub mod run;
pub mod serve;
pub mod service;
pub mod signals;
pub mod sim;
