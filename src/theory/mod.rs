//! Kinetic theory of test-particle drag and diffusion (Lenard–Balescu, finite-size particles).
