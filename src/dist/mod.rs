//! Distribution: the communicator seam between the training loop and MPI, and the exact,
//! order-independent sum that makes results identical for any rank count.
//!
//! [`init`] returns an MPI communicator when colop runs under a launcher (`mpirun`, `srun`,
//! any PMI/PMIx starter) and the `mpi` feature is on, otherwise a [`SingleProcess`] world of
//! one that never touches MPI. `COLOP_MPI=0` forces a single process, `COLOP_MPI=1` forces
//! MPI initialisation (e.g. a singleton run of an MPI build).

use std::sync::Arc;

pub mod bench;
pub mod exact;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod signals;

pub use bench::reduction_benchmark;
pub use exact::ExactSum;
#[cfg(feature = "mpi")]
pub use self::mpi::MpiComm;

/// Why the communicator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("MPI was already initialised in this process")]
    AlreadyInitialized,
    #[error("launched as {ranks} ranks by {launcher}, but colop was built without the `mpi` feature (rebuild with default features, or run one process)")]
    NoMpiSupport { ranks: usize, launcher: &'static str },
    #[error("environment variable COLOP_MPI={0:?} must be 0 or 1")]
    BadOverride(String),
    #[error("cannot install the SIGTERM/SIGUSR1 handlers: {0}")]
    Signal(#[source] std::io::Error),
}

/// What the training loop needs from a group of cooperating processes. A single process is a
/// world of one; the MPI implementation (feature `mpi`) spans every rank of the launch. All
/// methods but `rank`, `size`, `abort` and `fail` are collective: every rank calls them in the
/// same order.
pub trait Comm: Send + Sync {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Global exact sum of every rank's `acc`, in place; afterwards every rank holds the same value.
    fn allreduce_exact(&self, acc: &mut ExactSum);
    /// Element-wise global maximum, in place.
    fn allreduce_max_f64(&self, x: &mut [f64]);
    /// Element-wise global minimum, in place.
    fn allreduce_min_f64(&self, x: &mut [f64]);
    /// Element-wise global sum of integers, in place.
    fn allreduce_sum_u64(&self, x: &mut [u64]);
    /// Replace `bytes` on every rank by root's.
    fn broadcast_bytes(&self, root: usize, bytes: &mut Vec<u8>);
    fn barrier(&self);
    /// End every rank of the job now with exit code `code`. Never returns.
    fn abort(&self, code: i32) -> !;
    /// Orderly shutdown (MPI_Finalize); call once before a normal exit.
    fn finish(&self) {}

    /// Whether collectives may be called from any thread (one at a time), not only from the
    /// thread that initialised the communicator.
    fn any_thread(&self) -> bool {
        true
    }

    /// Whether this is rank 0, the only rank that writes outputs.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Whether `flag` is true on any rank (collective).
    fn any(&self, flag: bool) -> bool {
        let mut x = [flag as u64];
        self.allreduce_sum_u64(&mut x);
        x[0] > 0
    }

    /// Exact global sum of a small f64 vector (losses, counts), in place, identical on every
    /// rank and independent of the rank count (collective).
    fn allreduce_sum_f64_exact(&self, x: &mut [f64]) {
        let mut acc = ExactSum::new(x.len());
        acc.add(x);
        self.allreduce_exact(&mut acc);
        x.copy_from_slice(&acc.to_f64());
    }

    /// Print `message` with this rank's number on stderr and end the whole job with `code`:
    /// `abort` when other ranks exist (they may be waiting in a collective), a plain exit when
    /// alone. Never returns; not collective.
    fn fail(&self, message: &str, code: i32) -> ! {
        eprintln!("colop: error (rank {} of {}): {message}", self.rank(), self.size());
        if self.size() > 1 {
            self.abort(code)
        }
        std::process::exit(code)
    }
}

/// A world of one.
#[derive(Debug, Default)]
pub struct SingleProcess;

impl Comm for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allreduce_exact(&self, _acc: &mut ExactSum) {}
    fn allreduce_max_f64(&self, _x: &mut [f64]) {}
    fn allreduce_min_f64(&self, _x: &mut [f64]) {}
    fn allreduce_sum_u64(&self, _x: &mut [u64]) {}
    fn broadcast_bytes(&self, _root: usize, _bytes: &mut Vec<u8>) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// A process launcher found in the environment and the number of ranks it announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launcher {
    pub name: &'static str,
    /// Ranks announced by the launcher (`None` when it does not say).
    pub ranks: Option<usize>,
}

/// The launcher this process runs under, from the variables `mpirun` (Open MPI), PMI/PMIx
/// starters (MPICH's hydra, `srun --mpi=pmi2|pmix`) and `srun` set. `None` for a plain start;
/// also `None` inside a Slurm batch script or an `srun` of a single task.
pub fn detect_launcher() -> Option<Launcher> {
    detect_launcher_in(|key| std::env::var(key).ok())
}

fn detect_launcher_in(var: impl Fn(&str) -> Option<String>) -> Option<Launcher> {
    let number = |key: &str| var(key).and_then(|v| v.trim().parse::<usize>().ok());
    if var("OMPI_COMM_WORLD_SIZE").is_some() {
        return Some(Launcher { name: "mpirun (Open MPI)", ranks: number("OMPI_COMM_WORLD_SIZE") });
    }
    if var("PMIX_RANK").is_some() {
        let ranks = number("PMIX_SIZE").or_else(|| number("SLURM_NTASKS"));
        return Some(Launcher { name: "a PMIx launcher", ranks });
    }
    if var("PMI_RANK").is_some() || var("PMI_SIZE").is_some() {
        return Some(Launcher { name: "a PMI launcher", ranks: number("PMI_SIZE") });
    }
    // srun sets SLURM_STEP_ID and SLURM_PROCID for its tasks (not for the batch script itself).
    if var("SLURM_STEP_ID").is_some() && var("SLURM_PROCID").is_some() {
        let ranks = number("SLURM_STEP_NUM_TASKS").or_else(|| number("SLURM_NTASKS"));
        if ranks.is_some_and(|n| n > 1) {
            return Some(Launcher { name: "srun", ranks });
        }
    }
    None
}

/// The communicator for this process, or why it cannot be had (see the module documentation).
pub fn try_init() -> Result<Arc<dyn Comm>, DistError> {
    let wanted = match std::env::var("COLOP_MPI").ok().as_deref().map(str::trim) {
        None | Some("") => None,
        Some("0") => Some(false),
        Some("1") => Some(true),
        Some(other) => return Err(DistError::BadOverride(other.to_string())),
    };
    let launcher = detect_launcher();
    if !wanted.unwrap_or(launcher.is_some()) {
        return Ok(Arc::new(SingleProcess));
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Arc::new(MpiComm::init()?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        match launcher {
            Some(Launcher { name, ranks: Some(ranks) }) if ranks > 1 => Err(DistError::NoMpiSupport { ranks, launcher: name }),
            _ => Ok(Arc::new(SingleProcess)),
        }
    }
}

/// The communicator for this process: every rank of an MPI launch, or a world of one. On a
/// setup error prints one line and exits with status 2.
pub fn init() -> Arc<dyn Comm> {
    try_init().unwrap_or_else(|e| {
        eprintln!("colop: error: {e}");
        std::process::exit(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn detect(vars: &[(&str, &str)]) -> Option<Launcher> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        detect_launcher_in(|k| map.get(k).cloned())
    }

    #[test]
    fn launchers_are_recognised() {
        assert_eq!(detect(&[]), None);
        assert_eq!(detect(&[("OMPI_COMM_WORLD_SIZE", "3")]).unwrap().ranks, Some(3));
        assert_eq!(detect(&[("PMIX_RANK", "0"), ("SLURM_NTASKS", "4")]).unwrap().ranks, Some(4));
        assert_eq!(detect(&[("PMI_RANK", "1"), ("PMI_SIZE", "2")]).unwrap().ranks, Some(2));
        // Batch script: job variables but no step task.
        assert_eq!(detect(&[("SLURM_JOB_ID", "7"), ("SLURM_NTASKS", "2")]), None);
        // srun of one task is a plain process; of two it is a launch.
        assert_eq!(detect(&[("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]), None);
        let srun = detect(&[("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "1"), ("SLURM_STEP_NUM_TASKS", "2")]);
        assert_eq!(srun.unwrap().name, "srun");
    }

    #[test]
    fn single_process_helpers() {
        let comm = SingleProcess;
        assert!(comm.is_root());
        assert!(comm.any(true) && !comm.any(false));
        let mut x = [0.1, 2.0];
        comm.allreduce_sum_f64_exact(&mut x);
        assert_eq!(x, [0.1, 2.0]);
    }
}
