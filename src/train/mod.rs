//! The training loop: windows → rollout + adjoint → exact gradient reduction → Adam, with a
//! curriculum of stages, validation, best-model tracking and checkpoint/resume.
