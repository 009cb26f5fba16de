//! Checkpoint schedules for adjoint rollouts: binomial ("revolve") and store-all. Pure logic.
