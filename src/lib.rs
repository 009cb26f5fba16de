//! # colop — learn plasma collision operators from phase-space data
//!
//! PIC runs give velocity histograms f(v_x, v_y, t) of test particles relaxing in a thermal
//! plasma. colop learns the drag A and diffusion D of the Fokker–Planck operator
//! `∂f/∂t = −∂_i(A_i f) + ½ ∂_i∂_j(D_ij f)` that best explains them: run files ([`data`]) are cut
//! into (run, window) samples — of their histograms, or transition windows of their tracked
//! particles — and sharded over ranks; an operator model ([`operator`]) maps
//! parameters θ to coefficient fields; the solver ([`solver`]) rolls each window forward and its
//! exact discrete adjoint, with checkpointed recomputation, returns ∂L/∂fields; the model maps
//! those to ∂L/∂θ; the ranks' gradients are summed exactly ([`dist`]) and every rank applies the
//! same Adam update ([`train`]). [`eval`] and [`plot`] judge the result; [`pic`], [`campaign`],
//! [`baseline`] and [`theory`] make data and the operators to compare against.

pub mod alloc;
pub mod baseline;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod data;
pub mod dist;
pub mod eval;
pub mod grid;
pub mod io;
pub mod model_file;
pub mod operator;
pub mod pic;
pub mod plot;
pub mod solver;
pub mod synth;
pub mod theory;
pub mod train;
