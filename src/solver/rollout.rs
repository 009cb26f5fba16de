//! Multi-step rollouts of a [`super::Scheme`]: forward, and adjoint with checkpointed
//! recomputation.
//!
//! A rollout covers `K` snapshot intervals of `substeps` solver steps each, `n = K·substeps` steps
//! in all; interval `k` (0-based) uses prepared coefficients `prepared[k]`. The adjoint follows a
//! [`Schedule`]: whatever the schedule, the same adjoint steps run in the same order on the same
//! (recomputed, hence bitwise equal) states, so the gradients do not depend on the number of
//! checkpoints — only time and memory do. States are flat C-order vectors of the grid's cells, so
//! rollouts and their checkpoints are the same for 2D and 3D grids.
//!
//! **Bundles.** The initial state may hold several states one after the other (a *bundle* of
//! samples that share every interval's coefficients): they advance together through
//! [`Scheme::step_bundle`], each solver pass running all of them while the coefficients are in
//! cache, and checkpoints store the whole bundle. The callbacks then see the bundle's states (and
//! adjoints) as one slice; `d_prepared` receives, per adjoint step, the states' contributions in
//! bundle order.

use super::checkpoint::{Action, Schedule};

use super::{Scheme, StepWorkspace};
use crate::operator::Fields;

/// Per-thread buffers of rollouts, reused across samples: checkpoint slots (allocated on first
/// use, at most the schedule's slot count), two working states, two adjoint states and the
/// scheme's step workspace. Nothing is allocated per step.
#[derive(Default, Debug)]
pub struct RolloutWorkspace {
    slots: Vec<Vec<f64>>,
    work: [Vec<f64>; 2],
    lam: Vec<f64>,
    lam_next: Vec<f64>,
    step: StepWorkspace,
    /// Which slots hold a live state (checks the schedule in debug builds).
    occupied: Vec<bool>,
    /// Clamp masks, one per solver step of the current rollout (schemes that record them).
    masks: Vec<u64>,
}

impl RolloutWorkspace {
    /// An empty workspace for `scheme` (buffers grow on first use).
    pub fn new(scheme: &dyn Scheme) -> Self {
        Self { step: scheme.workspace(), ..Self::default() }
    }

    /// ∂L/∂f_0 after [`gradient`].
    pub fn d_initial(&self) -> &[f64] {
        &self.lam
    }

    /// Number of state buffers allocated for checkpoint slots (never more than the largest
    /// schedule's slot count this workspace has run).
    pub fn allocated_slots(&self) -> usize {
        self.slots.iter().filter(|s| !s.is_empty()).count()
    }

    /// Bytes held by state-sized buffers (slots, working states, adjoints).
    pub fn state_bytes(&self) -> usize {
        let len = |v: &Vec<f64>| v.capacity() * std::mem::size_of::<f64>();
        self.slots.iter().map(len).sum::<usize>()
            + self.work.iter().map(len).sum::<usize>()
            + len(&self.lam)
            + len(&self.lam_next)
    }

    fn ensure(&mut self, n_cells: usize, n_slots: usize) {
        for b in self.work.iter_mut().chain([&mut self.lam, &mut self.lam_next]) {
            b.resize(n_cells, 0.0);
        }
        if self.slots.len() < n_slots {
            self.slots.resize_with(n_slots, Vec::new);
        }
    }
}

/// What one adjoint rollout did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RolloutStats {
    /// Σ over snapshots of the loss terms returned by the callback (summed from k = K down to 1).
    pub loss: f64,
    /// Forward step evaluations (advances plus the last step).
    pub forward_steps: u64,
    /// Forward steps beyond the `n` of a plain forward rollout.
    pub recomputed_steps: u64,
    /// Most checkpoint slots holding a state at once.
    pub peak_live_states: usize,
}

/// Where the current state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Current {
    Input,
    Slot(usize),
    Work(usize),
}

/// Values of a (bundled) state: checks that `f0` holds whole states.
fn state_len(scheme: &dyn Scheme, substeps: usize, f0: &[f64]) -> usize {
    let n_cells = scheme.grid().n_cells();
    assert!(substeps >= 1, "rollout needs at least one substep per interval");
    assert!(
        !f0.is_empty() && f0.len() % n_cells == 0,
        "initial state has {} values, not a whole number of states of {n_cells} cells",
        f0.len()
    );
    f0.len()
}

fn check_shapes<'p>(scheme: &dyn Scheme, n_intervals: usize, prepared: &impl Fn(usize) -> &'p Fields, substeps: usize, f0: &[f64]) -> usize {
    let len = state_len(scheme, substeps, f0);
    let (k, nx, rest) = scheme.prepared_shape();
    let shape = [k, nx, rest];
    assert!((0..n_intervals).all(|k| prepared(k).shape() == shape), "prepared coefficients must have shape {shape:?}");
    len
}

/// Roll `f0` forward over `prepared.len()` snapshot intervals of `substeps` steps each, calling
/// `observe(k, f_k)` after interval `k = 1..=K`.
pub fn forward(
    scheme: &dyn Scheme,
    prepared: &[&Fields],
    substeps: usize,
    f0: &[f64],
    ws: &mut RolloutWorkspace,
    observe: impl FnMut(usize, &[f64]),
) {
    forward_by(scheme, prepared.len(), |k| prepared[k], substeps, f0, ws, observe)
}

/// [`forward`] with the coefficients of interval `k` given by `prepared(k)`: what training,
/// evaluation and benchmarks call, so that static models (one set for every interval) and
/// time-dependent ones (a set per interval) need no per-sample list.
pub fn forward_by<'p>(
    scheme: &dyn Scheme,
    n_intervals: usize,
    prepared: impl Fn(usize) -> &'p Fields,
    substeps: usize,
    f0: &[f64],
    ws: &mut RolloutWorkspace,
    observe: impl FnMut(usize, &[f64]),
) {
    check_shapes(scheme, n_intervals, &prepared, substeps, f0);
    forward_by_step(scheme, n_intervals, |k, _, step| step(prepared(k)), substeps, f0, ws, observe)
}

/// [`forward`] with coefficients that may change at every solver step: for step `s` of
/// interval `k`, `with_prepared(k, s, step)` makes (or picks) the prepared set and calls
/// `step(set)` once with it. `colop synth`'s time-dependent truths prepare a set per step.
pub fn forward_by_step(
    scheme: &dyn Scheme,
    n_intervals: usize,
    mut with_prepared: impl FnMut(usize, usize, &mut dyn FnMut(&Fields)),
    substeps: usize,
    f0: &[f64],
    ws: &mut RolloutWorkspace,
    mut observe: impl FnMut(usize, &[f64]),
) {
    let n_cells = state_len(scheme, substeps, f0);
    ws.ensure(n_cells, 0);
    let RolloutWorkspace { work, step: step_ws, .. } = ws;
    let mut current = Current::Input;
    for k in 0..n_intervals {
        for s in 0..substeps {
            let mut stepped = false;
            with_prepared(k, s, &mut |p| {
                assert!(!stepped, "with_prepared must call step once");
                current = step_from(scheme, p, current, f0, &[], work, &mut [], step_ws);
                stepped = true;
            });
            assert!(stepped, "with_prepared must call step once");
        }
        observe(k + 1, state(current, f0, &[], work));
    }
}

/// Adjoint rollout following `schedule` (over `K·substeps` solver steps).
///
/// `loss(k, f_k, lam)` is called exactly once per snapshot, `k = K, K−1, …, 1`, when `f_k` is
/// available; it adds ∂L/∂f_k into `lam` and returns its loss term. The gradient with respect to
/// the prepared coefficients of interval `k` is accumulated into `d_prepared[grad_slot[k]]`
/// (intervals sharing coefficients may share a buffer); ∂L/∂f_0 is left in
/// [`RolloutWorkspace::d_initial`]. Results are bitwise independent of the schedule.
#[allow(clippy::too_many_arguments)]
pub fn gradient(
    scheme: &dyn Scheme,
    prepared: &[&Fields],
    grad_slot: &[usize],
    d_prepared: &mut [Fields],
    substeps: usize,
    f0: &[f64],
    schedule: &Schedule,
    ws: &mut RolloutWorkspace,
    loss: impl FnMut(usize, &[f64], &mut [f64]) -> f64,
) -> RolloutStats {
    assert_eq!(grad_slot.len(), prepared.len(), "one gradient slot per interval");
    gradient_by(scheme, prepared.len(), |k| prepared[k], |k| grad_slot[k], d_prepared, substeps, f0, schedule, ws, loss)
}

/// [`gradient`] with the coefficients of interval `k` given by `prepared(k)` and its gradient
/// buffer by `d_prepared[grad_slot(k)]` (see [`forward_by`]).
#[allow(clippy::too_many_arguments)]
pub fn gradient_by<'p>(
    scheme: &dyn Scheme,
    n_intervals: usize,
    prepared: impl Fn(usize) -> &'p Fields,
    grad_slot: impl Fn(usize) -> usize,
    d_prepared: &mut [Fields],
    substeps: usize,
    f0: &[f64],
    schedule: &Schedule,
    ws: &mut RolloutWorkspace,
    mut loss: impl FnMut(usize, &[f64], &mut [f64]) -> f64,
) -> RolloutStats {
    let n_cells = check_shapes(scheme, n_intervals, &prepared, substeps, f0);
    let n_steps = n_intervals * substeps;
    assert!((0..n_intervals).all(|k| grad_slot(k) < d_prepared.len()), "gradient slot out of range");
    assert_eq!(schedule.n_steps(), n_steps, "schedule is for {} steps, rollout has {n_steps}", schedule.n_steps());
    ws.ensure(n_cells, schedule.slots());
    ws.lam.fill(0.0);
    ws.occupied.clear();
    ws.occupied.resize(schedule.slots(), false);
    let mut stats = RolloutStats::default();
    if n_steps == 0 {
        return stats;
    }
    // The clamp's active set of step i, recorded whenever step i runs forward (every step does
    // before its adjoint, and recomputation repeats it bitwise): the adjoint needs no extra step.
    let words = if scheme.records_mask() { super::mask_words(n_cells) } else { 0 };
    if ws.masks.len() < words * n_steps {
        ws.masks.resize(words * n_steps, 0);
    }
    let RolloutWorkspace { slots, work, lam, lam_next, step: step_ws, occupied, masks } = ws;
    let mut current = Current::Input;
    let mut live = 0usize;
    let interval = |i: usize| i / substeps;
    // A slot that stores the initial state holds nothing: `f0` outlives the rollout, so the
    // slot stands for it (restoring it makes the input current again) and no copy is made.
    let mut input_slot: Option<usize> = None;

    for action in schedule.actions() {
        match *action {
            Action::Advance { from, to } => {
                for i in from..to {
                    let mask = &mut masks[i * words..(i + 1) * words];
                    current = step_from(scheme, prepared(interval(i)), current, f0, slots, work, mask, step_ws);
                }
                stats.forward_steps += (to - from) as u64;
            }
            Action::Store { slot, .. } => {
                debug_assert!(!occupied[slot], "store into an occupied slot");
                occupied[slot] = true;
                live += 1;
                stats.peak_live_states = stats.peak_live_states.max(live);
                match current {
                    Current::Input if input_slot.is_none() => {
                        input_slot = Some(slot);
                        continue;
                    }
                    Current::Input => {
                        let buf = &mut slots[slot];
                        buf.clear();
                        buf.extend_from_slice(f0);
                    }
                    Current::Slot(j) => {
                        let (src, dst) = two_mut(slots, j, slot);
                        dst.clear();
                        dst.extend_from_slice(src);
                    }
                    Current::Work(w) => {
                        // Hand the working buffer to the slot and take the slot's old buffer as
                        // scratch: no copy (it is allocated on first use only).
                        std::mem::swap(&mut work[w], &mut slots[slot]);
                        work[w].resize(n_cells, 0.0);
                    }
                }
                current = Current::Slot(slot);
            }
            Action::Restore { slot, .. } => {
                debug_assert!(occupied[slot], "restore from a free slot");
                current = if input_slot == Some(slot) { Current::Input } else { Current::Slot(slot) };
            }
            Action::Free { slot } => {
                occupied[slot] = false;
                live -= 1;
                if input_slot == Some(slot) {
                    input_slot = None;
                }
            }
            Action::Adjoint { step } => {
                let k = interval(step);
                if step + 1 == n_steps {
                    // The last state exists only for the loss: one extra evaluation into a
                    // working buffer that does not hold the current state.
                    let mask = &mut masks[step * words..(step + 1) * words];
                    let last = step_from(scheme, prepared(k), current, f0, slots, work, mask, step_ws);
                    stats.forward_steps += 1;
                    stats.loss += loss(n_intervals, state(last, f0, slots, work), lam);
                }
                let f = state(current, f0, slots, work);
                let mask = &masks[step * words..(step + 1) * words];
                scheme.step_vjp_masked(prepared(k), f, lam, lam_next, &mut d_prepared[grad_slot(k)], mask, step_ws);
                std::mem::swap(lam, lam_next);
                if step % substeps == 0 && step > 0 {
                    stats.loss += loss(step / substeps, f, lam);
                }
            }
        }
    }
    stats.recomputed_steps = stats.forward_steps - n_steps as u64;
    stats
}

/// The state `current` refers to.
fn state<'a>(current: Current, f0: &'a [f64], slots: &'a [Vec<f64>], work: &'a [Vec<f64>; 2]) -> &'a [f64] {
    match current {
        Current::Input => f0,
        Current::Slot(j) => &slots[j],
        Current::Work(w) => &work[w],
    }
}

/// One step from the state `current` refers to into a working buffer that does not hold it,
/// recording its clamp mask in `mask` (empty if the scheme records none); returns where the new
/// state is.
#[allow(clippy::too_many_arguments)]
fn step_from(
    scheme: &dyn Scheme,
    prepared: &Fields,
    current: Current,
    f0: &[f64],
    slots: &[Vec<f64>],
    work: &mut [Vec<f64>; 2],
    mask: &mut [u64],
    step_ws: &mut StepWorkspace,
) -> Current {
    let [w0, w1] = work;
    let (src, out, next): (&[f64], &mut [f64], _) = match current {
        Current::Input => (f0, w0, Current::Work(0)),
        Current::Slot(j) => (&slots[j], w0, Current::Work(0)),
        Current::Work(0) => (w0, w1, Current::Work(1)),
        Current::Work(_) => (w1, w0, Current::Work(0)),
    };
    if mask.is_empty() {
        scheme.step_bundle(prepared, src, out, step_ws);
    } else {
        scheme.step_masked(prepared, src, out, mask, step_ws);
    }
    next
}

/// Shared `a` and mutable `b` borrows of two distinct elements.
fn two_mut(v: &mut [Vec<f64>], a: usize, b: usize) -> (&[f64], &mut Vec<f64>) {
    assert_ne!(a, b);
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&hi[0], &mut lo[b])
    }
}
