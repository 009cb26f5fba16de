//! Stop requests from the outside: SIGTERM and SIGUSR1 (what Slurm sends before a time limit or
//! a preemption) set a flag that the training loop polls; nothing else happens in the handler.
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

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Install the SIGTERM and SIGUSR1 handlers (idempotent). They only set the stop flag; a
/// second SIGTERM while the flag is set still only sets it, so the checkpoint can finish
/// (Slurm follows with SIGKILL after `KillWait` anyway).
pub fn install() -> Result<(), DistError> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGUSR1] {
        signal_hook::flag::register(signal, Arc::clone(flag())).map_err(DistError::Signal)?;
        // Record which signal arrived (for the log line). Only an atomic store: async-signal-safe.
        // SAFETY: the action does nothing but an atomic store.
        unsafe { signal_hook::low_level::register(signal, move || LAST_SIGNAL.store(signal, Ordering::SeqCst)) }
            .map_err(DistError::Signal)?;
    }
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether this process received SIGTERM or SIGUSR1 (or [`request_stop`] was called).
pub fn stop_requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// The name of the last stop signal received, if any.
pub fn last_signal() -> Option<&'static str> {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        signal_hook::consts::SIGTERM => Some("SIGTERM"),
        signal_hook::consts::SIGUSR1 => Some("SIGUSR1"),
        _ => None,
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
