//! The classic estimator of drag and diffusion from particle tracks.
