//! Multi-step rollouts of a [`super::Scheme`]: forward, and adjoint with checkpointed
//! recomputation.
