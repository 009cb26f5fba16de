//! Checkpoint schedules for adjoint rollouts: binomial ("revolve") and store-all. Pure logic.
//!
//! A rollout of `n` solver steps maps states `x_0 → x_1 → … → x_n`; step `i` maps `x_i` to
//! `x_{i+1}` and its adjoint needs `x_i` (the scheme recomputes anything else it needs from it).
//! A [`Schedule`] is the sequence of [`Action`]s that reverses all `n` steps while keeping at most
//! `s` states in checkpoint slots, recomputing the others from the nearest stored state. Besides
//! the slots the executor owns one *current* state (the state just computed or restored).
//!
//! The binomial schedule is optimal: it needs the least number of forward step evaluations of any
//! schedule with `s` slots (Griewank 1992, "Achieving logarithmic growth of temporal and spatial
//! complexity in reverse automatic differentiation", Optim. Methods Softw. 1; Griewank & Walther
//! 2000, "Algorithm 799: revolve", ACM TOMS 26(1)). With `β(s, r) = C(s + r, s)` and `r` the
//! smallest integer with `β(s, r) ≥ n`, reversing `n` steps from `x_0` takes
//! `t(n, s) = r·n − β(s + 1, r − 1)` advances ([`min_advances`]). Rollouts also evaluate the last
//! step once to get `x_n` for the loss, so the total is `t(n, s) + 1` ([`min_forward_steps`]).

use super::{CheckpointWord, Checkpoints};

/// One instruction of a checkpoint schedule. `step` indices are state indices `0..=n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy the current state, `x_step`, into checkpoint slot `slot`.
    Store { slot: usize, step: usize },
    /// Make the state held in `slot`, `x_step`, the current state.
    Restore { slot: usize, step: usize },
    /// Advance the current state from `x_from` to `x_to` (`to − from` step evaluations).
    Advance { from: usize, to: usize },
    /// Adjoint of step `step` (`x_step → x_{step+1}`); the current state is `x_step`.
    Adjoint { step: usize },
    /// Slot `slot` is no longer needed.
    Free { slot: usize },
}

/// Why a checkpoint count cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckpointError {
    #[error("solver.checkpoints must be at least 1, got {0}")]
    Zero(usize),
    #[error("solver.memory_budget_mb must be a positive number, got {0}")]
    BadBudget(f64),
    #[error(
        "solver.memory_budget_mb = {budget_mb} is too small for {in_flight} samples in flight: \
         checkpoints need at least {needed_mb:.2} MiB"
    )]
    BudgetTooSmall { budget_mb: f64, in_flight: usize, needed_mb: f64 },
}

/// A complete reversal schedule for `n_steps` steps using at most `slots` checkpoint slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    n_steps: usize,
    slots: usize,
    actions: Vec<Action>,
}

/// `β(s, r) = C(s + r, s)`, saturating at `u64::MAX`.
pub fn beta(s: usize, r: usize) -> u64 {
    let mut value: u128 = 1;
    for i in 1..=r as u128 {
        // C(s + i, i) = C(s + i − 1, i − 1)·(s + i)/i, exact at every step.
        value = value * (s as u128 + i) / i;
        if value >= u64::MAX as u128 {
            return u64::MAX;
        }
    }
    value as u64
}

/// Smallest `r` with `β(s, r) ≥ n` (the number of times some step is evaluated, at most).
pub fn repetitions(n: usize, s: usize) -> usize {
    assert!(s >= 1, "at least one checkpoint slot");
    let mut r = 0;
    while beta(s, r) < n as u64 {
        r += 1;
    }
    r
}

/// Least number of advances (forward step evaluations) needed to reverse `n` steps from a stored
/// `x_0` with `s ≥ 1` checkpoint slots (slot for `x_0` included): `t(n, s) = r·n − β(s+1, r−1)`
/// with `r` the smallest integer such that `β(s, r) ≥ n` (Griewank & Walther 2000, Prop. 1).
/// Equals `n − 1` when `s ≥ n − 1`, and `n(n − 1)/2` when `s = 1`.
pub fn min_advances(n: usize, s: usize) -> u64 {
    assert!(s >= 1, "at least one checkpoint slot");
    if n <= 1 {
        return 0;
    }
    let r = repetitions(n, s);
    r as u64 * n as u64 - beta(s + 1, r - 1)
}

/// Least number of step evaluations of a whole adjoint rollout of `n` steps with `s` slots:
/// the advances of [`min_advances`] plus one evaluation of the last step for `x_n`.
pub fn min_forward_steps(n: usize, s: usize) -> u64 {
    if n == 0 {
        0
    } else {
        min_advances(n, s) + 1
    }
}

/// Slots that avoid all recomputation for `n_steps` steps: every state but the last, which is
/// current when its adjoint runs.
pub fn store_all_slots(n_steps: usize) -> usize {
    n_steps.saturating_sub(1).max(1)
}

/// Resolve `solver.checkpoints` to a slot count per sample for a rollout of `n_steps` steps.
///
/// `all` stores every state but the last (`n_steps − 1` slots, at least one). A count is capped
/// there (more is useless).
/// `auto` gives each of the `in_flight` samples (one per thread) an equal share of
/// `memory_budget_mb` MiB; besides its slots a sample keeps four state-sized working buffers
/// (current and next state, two adjoints). It stores everything when that fits and otherwise
/// takes as many slots as fit.
/// State buffers a rollout holds besides its checkpoint slots (working states and adjoints).
const WORKING: usize = 4;

/// How many samples one rollout may carry as a bundle (states one after the other, see
/// [`super::rollout`]) when a single sample's schedule uses `slots` checkpoint slots: the most
/// whose slots and working buffers, `in_flight` rollouts at once, fit in the memory budget, at
/// least 1 and at most `cap`. A bundle reuses the single sample's schedule, so bundling never
/// adds recomputation.
pub fn bundle_capacity(memory_budget_mb: f64, state_bytes: usize, in_flight: usize, slots: usize, cap: usize) -> usize {
    let per_rollout = memory_budget_mb * 1024.0 * 1024.0 / in_flight.max(1) as f64;
    let one = ((slots + WORKING) * state_bytes.max(1)) as f64;
    let fit = (per_rollout / one).floor();
    if fit.is_finite() && fit >= 1.0 {
        (fit as usize).clamp(1, cap.max(1))
    } else {
        1
    }
}

pub fn resolve(
    config: Checkpoints,
    memory_budget_mb: f64,
    state_bytes: usize,
    in_flight: usize,
    n_steps: usize,
) -> Result<usize, CheckpointError> {
    let all = store_all_slots(n_steps);
    match config {
        Checkpoints::Count(0) => Err(CheckpointError::Zero(0)),
        Checkpoints::Count(c) => Ok(c.min(all)),
        Checkpoints::Word(CheckpointWord::All) => Ok(all),
        Checkpoints::Word(CheckpointWord::Auto) => {
            if !(memory_budget_mb.is_finite() && memory_budget_mb > 0.0) {
                return Err(CheckpointError::BadBudget(memory_budget_mb));
            }
            let in_flight = in_flight.max(1);
            let state_bytes = state_bytes.max(1) as f64;
            let per_sample = memory_budget_mb * 1024.0 * 1024.0 / in_flight as f64;
            let fit = (per_sample / state_bytes).floor() - WORKING as f64;
            if fit < 1.0 {
                let needed_mb = (WORKING + 1) as f64 * state_bytes * in_flight as f64 / (1024.0 * 1024.0);
                return Err(CheckpointError::BudgetTooSmall { budget_mb: memory_budget_mb, in_flight, needed_mb });
            }
            Ok(if fit >= all as f64 { all } else { fit as usize })
        }
    }
}

impl Schedule {
    /// The optimal binomial schedule for `n_steps` steps with at most `slots ≥ 1` stored states.
    pub fn binomial(n_steps: usize, slots: usize) -> Self {
        assert!(slots >= 1, "at least one checkpoint slot");
        let mut builder = Builder { actions: Vec::new(), current: 0, occupied: 0, slots };
        if n_steps > 0 {
            builder.store(0);
            builder.reverse(0, n_steps, slots - 1, 0);
            builder.free(0);
        }
        Schedule { n_steps, slots, actions: builder.actions }
    }

    /// Store every state but the last: no recomputation, `max(n_steps − 1, 1)` slots.
    pub fn store_all(n_steps: usize) -> Self {
        Self::binomial(n_steps, store_all_slots(n_steps))
    }

    /// The schedule `solver.checkpoints` asks for (see [`resolve`]).
    pub fn from_config(
        config: Checkpoints,
        memory_budget_mb: f64,
        state_bytes: usize,
        in_flight: usize,
        n_steps: usize,
    ) -> Result<Self, CheckpointError> {
        Ok(Self::binomial(n_steps, resolve(config, memory_budget_mb, state_bytes, in_flight, n_steps)?))
    }

    pub fn n_steps(&self) -> usize {
        self.n_steps
    }
    /// Checkpoint slots the schedule may use (slot indices are below this).
    pub fn slots(&self) -> usize {
        self.slots
    }
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }
    /// Number of advances (forward step evaluations, excluding the final step for `x_n`).
    pub fn advances(&self) -> u64 {
        self.actions
            .iter()
            .map(|a| match a {
                Action::Advance { from, to } => (to - from) as u64,
                _ => 0,
            })
            .sum()
    }
    /// Most slots occupied at once.
    pub fn peak_slots(&self) -> usize {
        let (mut live, mut peak) = (0usize, 0usize);
        for a in &self.actions {
            match a {
                Action::Store { .. } => {
                    live += 1;
                    peak = peak.max(live);
                }
                Action::Free { .. } => live -= 1,
                _ => {}
            }
        }
        peak
    }
}

/// Emits the actions of the recursive binomial reversal.
struct Builder {
    actions: Vec<Action>,
    /// Index of the current state.
    current: usize,
    /// Occupied slots; slots are used as a stack, so the next free slot is `occupied`.
    occupied: usize,
    slots: usize,
}

impl Builder {
    fn store(&mut self, step: usize) -> usize {
        let slot = self.occupied;
        debug_assert!(slot < self.slots);
        self.actions.push(Action::Store { slot, step });
        self.occupied += 1;
        slot
    }
    fn free(&mut self, slot: usize) {
        self.actions.push(Action::Free { slot });
        self.occupied -= 1;
    }
    fn restore(&mut self, slot: usize, step: usize) {
        if self.current != step {
            self.actions.push(Action::Restore { slot, step });
            self.current = step;
        }
    }
    fn advance(&mut self, to: usize) {
        if to > self.current {
            self.actions.push(Action::Advance { from: self.current, to });
            self.current = to;
        }
    }

    /// Reverse steps `a..b` given `x_a` in slot `held` and `free` further free slots.
    fn reverse(&mut self, a: usize, mut b: usize, free: usize, held: usize) {
        // The second recursive call (on a..m, same free slots) is a loop, so the depth is at most
        // `free + 1` whatever the number of steps.
        while b > a {
            let len = b - a;
            self.restore(held, a);
            if len == 1 {
                self.actions.push(Action::Adjoint { step: a });
                return;
            }
            if free == 0 {
                // One slot: recompute every state from x_a.
                for i in (a..b).rev() {
                    self.restore(held, a);
                    self.advance(i);
                    self.actions.push(Action::Adjoint { step: i });
                }
                return;
            }
            if free + 2 >= len {
                // Enough slots for every state but the last, which is current when reversed: one
                // sweep, no recomputation.
                let first = self.occupied;
                for i in a + 1..b - 1 {
                    self.advance(i);
                    self.store(i);
                }
                self.advance(b - 1);
                self.actions.push(Action::Adjoint { step: b - 1 });
                for i in (a + 1..b - 1).rev() {
                    let slot = first + (i - a - 1);
                    self.restore(slot, i);
                    self.actions.push(Action::Adjoint { step: i });
                    self.free(slot);
                }
                self.restore(held, a);
                self.actions.push(Action::Adjoint { step: a });
                return;
            }
            let m = a + best_split(len, free);
            self.advance(m);
            let slot = self.store(m);
            self.reverse(m, b, free - 1, slot);
            self.free(slot);
            b = m;
        }
    }
}

/// Advances to reverse `len` steps from a held state with `free` further slots.
fn cost(len: usize, free: usize) -> u64 {
    min_advances(len, free + 1)
}

/// The optimal first checkpoint offset `j ∈ 1..len` for reversing `len ≥ 2` steps with `free ≥ 1`
/// further slots: it minimises `g(j) = j + cost(len − j, free − 1) + cost(j, free)`. `cost(·, f)`
/// is convex (its increments `r` never decrease), so `g` is convex and the smallest `j` with
/// `g(j + 1) ≥ g(j)` is the smallest minimiser; found by bisection.
fn best_split(len: usize, free: usize) -> usize {
    let g = |j: usize| j as u64 + cost(len - j, free - 1) + cost(j, free);
    let (mut lo, mut hi) = (1usize, len - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if g(mid + 1) >= g(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_counts() {
        assert_eq!(beta(3, 2), 10);
        assert_eq!(beta(1, 5), 6);
        assert_eq!(min_advances(10, 1), 45);
        assert_eq!(min_advances(10, 9), 9);
        assert_eq!(min_advances(10, 50), 9);
        assert_eq!(min_forward_steps(10, 10), 10);
        assert_eq!(min_forward_steps(0, 3), 0);
    }

    #[test]
    fn resolve_modes() {
        use super::super::{CheckpointWord::*, Checkpoints::*};
        assert_eq!(resolve(Word(All), 1.0, 8, 2, 1900), Ok(1899));
        assert_eq!(resolve(Count(10), 1.0, 8, 2, 1900), Ok(10));
        assert_eq!(resolve(Count(5000), 1.0, 8, 2, 1900), Ok(1899));
        assert_eq!(resolve(Count(0), 1.0, 8, 2, 1900), Err(CheckpointError::Zero(0)));
        // 1 MiB over 2 samples of 64 KiB states: 8 states each, minus 4 working buffers.
        assert_eq!(resolve(Word(Auto), 1.0, 65536, 2, 1900), Ok(4));
        assert_eq!(resolve(Word(Auto), 1.0, 65536, 2, 3), Ok(2));
        assert_eq!(resolve(Word(All), 1.0, 8, 2, 0), Ok(1));
        assert!(matches!(resolve(Word(Auto), 0.1, 65536, 2, 100), Err(CheckpointError::BudgetTooSmall { .. })));
        assert!(matches!(resolve(Word(Auto), f64::NAN, 8, 2, 100), Err(CheckpointError::BadBudget(_))));
        assert_eq!(Schedule::from_config(Word(Auto), 256.0, 20808, 2, 95).unwrap(), Schedule::store_all(95));
        // 1 MiB over 2 rollouts: 8 states of 64 KiB each; 1 slot + 4 working → one sample.
        assert_eq!(bundle_capacity(1.0, 65536, 2, 1, 8), 1);
        assert_eq!(bundle_capacity(3.0, 65536, 2, 1, 8), 4);
        assert_eq!(bundle_capacity(256.0, 20808, 2, 9, 8), 8);
        assert_eq!(bundle_capacity(0.01, 65536, 2, 1, 8), 1);
        let msg = resolve(Word(Auto), 0.1, 65536, 2, 100).unwrap_err().to_string();
        assert!(msg.contains("solver.memory_budget_mb") && !msg.contains('\n'), "{msg}");
    }
}
