//! Stop requests from the outside: SIGTERM and SIGUSR1 (what Slurm sends before a time limit or
//! a preemption) and SIGINT (Ctrl-C) set a flag that the training loop polls; nothing else happens
//! in the handler. A second SIGINT ends the process at once with status 130 (128 + SIGINT), for a
//! user who does not want to wait for the end of the epoch.
//!
//! The flag is per process, and a signal may reach some ranks before others (or only the batch
//! shell's step). The trainer therefore agrees on it collectively once per epoch with
//! [`stop_agreed`] (an allreduce: stop if any rank saw a signal), so that all ranks write the
//! checkpoint at the same step and leave together with exit code [`EXIT_CHECKPOINTED`].

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use super::{Comm, DistError};

/// Exit status of a run that wrote `checkpoint.h5` on a stop request and wants to be resumed
/// (`EX_TEMPFAIL`); `jobs/train.sbatch` requeues the job on it.
pub const EXIT_CHECKPOINTED: i32 = 75;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Stop signals the watcher thread has logged.
static ANNOUNCED: AtomicI32 = AtomicI32::new(0);

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Exit status of a second Ctrl-C: the shell's convention for death by SIGINT.
pub const EXIT_SECOND_INTERRUPT: i32 = 128 + signal_hook::consts::SIGINT;

/// Install the SIGTERM, SIGUSR1 and SIGINT handlers (idempotent). They only set the stop flag; a
/// second SIGTERM while the flag is set still only sets it, so the checkpoint can finish
/// (Slurm follows with SIGKILL after `KillWait` anyway). A second SIGINT exits at once with
/// [`EXIT_SECOND_INTERRUPT`], without a checkpoint.
///
/// A watcher thread logs each stop signal as it arrives, so that a user who pressed Ctrl-C sees
/// that the run is finishing its epoch.
pub fn install() -> Result<(), DistError> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    // Second Ctrl-C: the conditional shutdown fires only once the first SIGINT has set
    // `interrupted` (registered before the flag, so the first SIGINT finds it still false).
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, EXIT_SECOND_INTERRUPT, Arc::clone(&interrupted)).map_err(DistError::Signal)?;
    signal_hook::flag::register(SIGINT, interrupted).map_err(DistError::Signal)?;
    for signal in [SIGTERM, SIGUSR1, SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(flag())).map_err(DistError::Signal)?;
        // Record which signal arrived (for the log line). Only an atomic store: async-signal-safe.
        // SAFETY: the action does nothing but an atomic store.
        unsafe { signal_hook::low_level::register(signal, move || LAST_SIGNAL.store(signal, Ordering::SeqCst)) }
            .map_err(DistError::Signal)?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGUSR1, SIGINT]).map_err(DistError::Signal)?;
    std::thread::Builder::new()
        .name("colop-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = name_of(signal).unwrap_or("signal");
                if signal == SIGINT {
                    tracing::warn!("{name}: writing a checkpoint at the end of this epoch, then exiting (Ctrl-C again to quit at once, losing the epoch)");
                } else {
                    tracing::warn!("{name}: writing a checkpoint at the end of this epoch, then exiting");
                }
                ANNOUNCED.fetch_add(1, Ordering::SeqCst);
            }
        })
        .map_err(DistError::Signal)?;
    let _ = INSTALLED.set(());
    Ok(())
}

fn name_of(signal: i32) -> Option<&'static str> {
    match signal {
        signal_hook::consts::SIGTERM => Some("SIGTERM"),
        signal_hook::consts::SIGUSR1 => Some("SIGUSR1"),
        signal_hook::consts::SIGINT => Some("SIGINT"),
        _ => None,
    }
}

/// Whether this process received SIGTERM, SIGUSR1 or SIGINT (or [`request_stop`] was called).
pub fn stop_requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// The name of the last stop signal received, if any.
pub fn last_signal() -> Option<&'static str> {
    name_of(LAST_SIGNAL.load(Ordering::SeqCst))
}

/// Wait (at most a second) until the watcher thread has logged a received stop signal, so the
/// user always sees which signal stopped the run before the process exits, however briefly the
/// last epoch ran. Returns at once when no signal arrived.
pub fn wait_announced() {
    if LAST_SIGNAL.load(Ordering::SeqCst) == 0 {
        return;
    }
    let t0 = std::time::Instant::now();
    while ANNOUNCED.load(Ordering::SeqCst) == 0 && t0.elapsed() < std::time::Duration::from_secs(1) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Set the stop flag from inside the program (tests, or a stop file).
pub fn request_stop() {
    flag().store(true, Ordering::SeqCst);
}

/// Clear the stop flag (tests).
pub fn reset() {
    flag().store(false, Ordering::SeqCst);
    LAST_SIGNAL.store(0, Ordering::SeqCst);
    ANNOUNCED.store(0, Ordering::SeqCst);
}

/// Collective: whether any rank has been asked to stop. Call at the same point of every epoch
/// on all ranks.
pub fn stop_agreed(comm: &dyn Comm) -> bool {
    comm.any(stop_requested())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigusr1_sets_the_flag() {
        install().unwrap();
        install().unwrap(); // idempotent
        reset();
        assert!(!stop_requested());
        signal_hook::low_level::raise(signal_hook::consts::SIGUSR1).unwrap();
        assert!(stop_requested());
        assert_eq!(last_signal(), Some("SIGUSR1"));
        assert!(stop_agreed(&crate::dist::SingleProcess));
        reset();
        assert!(!stop_agreed(&crate::dist::SingleProcess));
    }
}
