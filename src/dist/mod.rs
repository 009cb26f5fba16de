//! Distribution: the communicator seam between the training loop and MPI, and the exact,
//! order-independent sum that makes results identical for any rank count.

use std::sync::Arc;

pub mod exact;
pub mod signals;
pub use exact::ExactSum;

/// What the training loop needs from a group of cooperating processes. A single process is a
/// world of one; the MPI implementation (feature `mpi`) spans every rank of the launch. All
/// methods but `rank`, `size` and `abort` are collective: every rank calls them in the same order.
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

/// The communicator for this process: every rank of an MPI launch, or a world of one.
pub fn init() -> Arc<dyn Comm> {
    Arc::new(SingleProcess)
}
