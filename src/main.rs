//! The `colop` binary: parse the command line, set up the communicator and logging, run.

use clap::Parser;
use colop::cli::{self, Cli, Context};

fn main() {
    let cli = Cli::parse();
    let comm = colop::dist::init();
    colop::cli::logging::init(cli.verbose, cli.quiet, comm.rank());
    let ctx = Context { comm };
    if let Err(e) = cli::run(cli, &ctx) {
        // One line: the outermost context first, causes after it.
        let msg = format!("{e:#}");
        tracing::error!("{msg}");
        eprintln!("colop: error: {msg}");
        std::process::exit(1);
    }
}
