//! Logging: `tracing` lines on stderr, each with the rank; `-v`/`-q` and `RUST_LOG` set verbosity.

use std::io::IsTerminal;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

struct RankFormat {
    rank: usize,
}

impl<S, N> FormatEvent<S, N> for RankFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &tracing::Event<'_>) -> std::fmt::Result {
        let meta = event.metadata();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let (h, m, s) = (((secs / 3600.0) as u64) % 24, ((secs / 60.0) as u64) % 60, secs % 60.0);
        write!(w, "{h:02}:{m:02}:{s:06.3} {:>5} [rank {}] ", meta.level(), self.rank)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Install the global subscriber. Safe to call once per process.
pub fn init(verbose: u8, quiet: bool, rank: usize) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours and italics only on a terminal: logs piped or redirected to a file (batch
        // jobs, CI) stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(RankFormat { rank })
        .try_init();
}
