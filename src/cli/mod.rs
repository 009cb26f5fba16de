//! The `colop` command line: one file per subcommand, no numerics here.

use crate::dist::Comm;
use clap::{Parser, Subcommand};
use std::sync::Arc;

pub mod bench;
pub mod bench_memory;
pub mod logging;
pub mod campaign;
pub mod compare;
pub mod eval;
pub mod import;
pub mod pic;
pub mod plot;
pub mod synth;
pub mod theory;
pub mod tracks;
pub mod train;

/// Learn plasma collision operators from phase-space data.
#[derive(Parser, Debug)]
#[command(name = "colop", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less log output (warnings and errors only).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Threads per process (per MPI rank). Default: RAYON_NUM_THREADS, else every core.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write synthetic datasets rolled out from a known operator.
    Synth(synth::Args),
    /// Import data or operators from other layouts.
    #[command(subcommand)]
    Import(import::Command),
    /// Learn an operator from run files.
    Train(train::Args),
    /// Roll a learned operator out against runs and report errors and moments.
    Eval(eval::Args),
    /// Draw the figures of a run directory or model.
    Plot(plot::Args),
    /// Print solver, adjoint, memory and reduction benchmarks as JSON.
    Bench(bench::Args),
    /// Run the built-in 2D electrostatic PIC code.
    Pic(pic::Args),
    /// Plan and run parameter-space campaigns of PIC runs.
    #[command(subcommand)]
    Campaign(campaign::Command),
    /// Estimate drag and diffusion from particle tracks.
    Tracks(tracks::Args),
    /// Drag and diffusion from electrostatic kinetic theory.
    Theory(theory::Args),
    /// Compare learned, track-estimated and theoretical operators.
    Compare(compare::Args),
}

/// Write `text` and a newline to stdout. A reader that has gone (`colop … | head`) is not an
/// error: the output is dropped quietly and the command carries on (figures, files).
pub fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            tracing::debug!("stdout closed early");
            Ok(())
        }
        other => Ok(other.map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))?),
    }
}

/// Parse one `key=value` of `--params` (a comma-separated list of them is split by clap).
pub fn parse_param(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not key=value"))?;
    let key = k.trim();
    if key.is_empty() {
        return Err(format!("`{s}`: the key is empty"));
    }
    let value: f64 = v.trim().parse().map_err(|_| format!("`{v}` is not a number (in `{s}`)"))?;
    if !value.is_finite() {
        return Err(format!("`{s}`: value must be finite"));
    }
    Ok((key.to_string(), value))
}

/// What every subcommand gets besides its arguments.
pub struct Context {
    pub comm: Arc<dyn Comm>,
}

/// Run the parsed command on a worker of the rayon pool (`--threads` of them).
///
/// The command itself runs *inside* the pool, so with one thread per rank the rank is one busy
/// thread: the thread that issues MPI calls is the one that computes, and no idle worker spins
/// beside it while the caller waits. Run from the main thread instead, a rank would hand every
/// parallel loop to a worker and then busy-poll in MPI beside it: three runnable threads for two
/// ranks on two cores, which cost 20–25% of weak-scaling efficiency. An MPI library that accepts
/// calls from its initial thread only gets the command run there, with the same pool size.
pub fn run(cli: Cli, ctx: &Context) -> anyhow::Result<()> {
    let builder = pool_builder(cli.threads)?;
    if ctx.comm.any_thread() {
        builder.build()?.install(|| dispatch(cli.command, ctx))
    } else {
        builder.build_global()?;
        dispatch(cli.command, ctx)
    }
}

/// The pool commands run in: `threads` workers, or rayon's default (RAYON_NUM_THREADS, else
/// every core).
fn pool_builder(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPoolBuilder> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("colop-{i}"));
    if let Some(n) = threads {
        anyhow::ensure!(n >= 1, "--threads must be ≥ 1");
        builder = builder.num_threads(n);
    }
    Ok(builder)
}

fn dispatch(command: Command, ctx: &Context) -> anyhow::Result<()> {
    match command {
        Command::Synth(a) => synth::run(a, ctx),
        Command::Import(c) => import::run(c, ctx),
        Command::Train(a) => train::run(a, ctx),
        Command::Eval(a) => eval::run(a, ctx),
        Command::Plot(a) => plot::run(a, ctx),
        Command::Bench(a) => bench::run(a, ctx),
        Command::Pic(a) => pic::run(a, ctx),
        Command::Campaign(c) => campaign::run(c, ctx),
        Command::Tracks(a) => tracks::run(a, ctx),
        Command::Theory(a) => theory::run(a, ctx),
        Command::Compare(a) => compare::run(a, ctx),
    }
}
