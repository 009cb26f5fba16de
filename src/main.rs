//! The `colop` binary: parse the command line, set up the communicator and logging, run.

use clap::Parser;
use colop::cli::{self, Cli, Context};

/// mimalloc rather than the system allocator: every command runs on rayon worker threads (see
/// [`cli::run`]), and glibc's per-thread arenas return freed buffers of a few hundred kB to the
/// kernel and fault them back in on the next epoch (150 000 page faults in a 600-epoch run,
/// +20% epoch time); mimalloc keeps them in its thread-local pages. Allocations are counted
/// for `colop bench --what epoch`.
#[global_allocator]
static GLOBAL: colop::alloc::Counting<mimalloc::MiMalloc> = colop::alloc::Counting(mimalloc::MiMalloc);

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
