//! The `colop` binary: parse the command line, set up the communicator and logging, run.

use clap::Parser;
use colop::cli::{self, Cli, Context};

fn main() {
    let cli = Cli::parse();
    let comm = colop::dist::init();
    colop::cli::logging::init(cli.verbose, cli.quiet, comm.rank());
    let ctx = Context { comm: comm.clone() };
    match cli::run(cli, &ctx) {
        Ok(()) => comm.finish(),
        Err(e) => {
            if e.downcast_ref::<colop::train::Interrupted>().is_some() {
                tracing::warn!("{e}");
                comm.finish();
                std::process::exit(colop::train::EXIT_CHECKPOINTED);
            }
            // One line: the outermost context first, causes after it. With several ranks this
            // ends every rank of the job (never a hang in a collective).
            let msg = format!("{e:#}").replace('\n', "; ");
            comm.fail(&msg, 1);
        }
    }
}
