//! Evaluation: autoregressive rollouts against observed runs, error metrics and moments.
