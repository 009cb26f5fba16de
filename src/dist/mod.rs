//! Distribution: the communicator seam between the training loop and MPI, and the exact,
//! order-independent sum that makes results identical for any rank count.

use std::sync::Arc;

/// What the training loop needs from a group of cooperating processes. A single process is a
/// world of one; the MPI implementation (feature `mpi`) spans every rank of the launch.
pub trait Comm: Send + Sync {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
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
}

/// The communicator for this process: every rank of an MPI launch, or a world of one.
pub fn init() -> Arc<dyn Comm> {
    Arc::new(SingleProcess)
}
