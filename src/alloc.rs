//! Heap allocations: a counting wrapper for the global allocator (how many allocations a piece
//! of work makes: the training benchmark reports allocations per epoch; a test asserts none per
//! sample), and [`Pool`], which lets `&self` code keep its buffers from one call to the next.
//!
//! The count is one relaxed atomic increment per allocation, negligible beside the allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Allocations (including reallocations) made through a [`Counting`] allocator so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// `A`, counting every `alloc`, `alloc_zeroed` and `realloc`.
pub struct Counting<A>(pub A);

// SAFETY: every call is forwarded unchanged to the wrapped allocator.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

/// Workspaces of a `&self` computation, kept between calls: a call takes one (preferring one
/// that `prefer` accepts, else the most recently returned, else a new `T::default()`), uses it
/// and puts it back, so steady-state calls allocate nothing, and concurrent calls each get their
/// own. Cloning gives an empty pool (workspaces are caches, not state).
pub struct Pool<T>(Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl<T: Default> Pool<T> {
    /// `work(workspace)` with a pooled workspace.
    pub fn with<R>(&self, prefer: impl Fn(&T) -> bool, work: impl FnOnce(&mut T) -> R) -> R {
        let taken = {
            let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match free.iter().rposition(&prefer) {
                Some(i) => Some(free.remove(i)),
                None => free.pop(),
            }
        };
        let mut ws = taken.unwrap_or_default();
        let out = work(&mut ws);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(ws);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_reuse_and_prefer_workspaces() {
        let pool: Pool<Vec<u32>> = Pool::default();
        pool.with(|_| false, |w| w.push(1));
        pool.with(|_| false, |w| assert_eq!(w, &[1], "the returned workspace is reused"));
        // Two live at once: the inner call gets a fresh one.
        pool.with(|_| false, |a| pool.with(|_| false, |b| { assert!(b.is_empty()); b.push(2); a.push(3) }));
        pool.with(|w| w.first() == Some(&2), |w| assert_eq!(w, &[2]));
        pool.with(|w| w.first() == Some(&1), |w| assert_eq!(w, &[1, 3]));
        assert!(pool.clone().0.lock().unwrap().is_empty(), "a clone starts empty");
    }
}
