//! Where a run's results go: flags shared by `run`, `serve` and `sim`.

use std::path::PathBuf;

use clap::Args;

use crate::logs::LogDir;

/// The logs and the summary's form.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Write requests.csv, windows.csv and summary.json here.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Replace those files when --log-dir already has them (else an error).
    #[arg(long)]
    pub force: bool,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    /// Where the logs go, if anywhere.
    pub fn logs(&self) -> Option<LogDir> {
        self.log_dir.clone().map(|dir| LogDir {
            dir,
            force: self.force,
        })
    }
}
