//! `ecoedge`: serve, simulate and compare DNN inference with online tuning of CPU
//! clock, GPU clock and batch size (see `ecoedge --help`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecoedge_runner::cmd;

/// EcoEdge: DNN inference on edge boards at the lowest energy and latency.
#[derive(Debug, Parser)]
#[command(name = "ecoedge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve real inference requests on this board while the optimizer tunes it.
    Run(cmd::run::RunArgs),
    /// The inference service: KServe v2 over HTTP, Prometheus metrics, online tuning.
    Serve(cmd::serve::ServeArgs),
    /// One optimizer, one workload, in virtual time on a simulated board.
    Sim(cmd::sim::SimArgs),
    /// The paper's evaluation: every optimizer on every workload, tables and plots.
    Compare(cmd::compare::CompareArgs),
    /// What the board offers: detection, CPU and GPU levels, governors, power rails.
    Board(cmd::board::BoardArgs),
    /// Write a device profile (latency and power per config) for `--device PATH`.
    Profile(cmd::profile::ProfileArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(&args),
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Sim(args) => cmd::sim::run(&args),
        Command::Profile(args) => cmd::profile::run(&args),
        Command::Board(args) => cmd::board::run(&args),
        Command::Compare(args) => cmd::compare::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost context names the input, the causes say why.
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
