//! A small dense multilayer perceptron with hand-written forward, tangent (JVP) and parameter
//! vector–Jacobian passes, batched over rows (one row per grid cell).
//!
//! Layout of the parameter vector: layer after layer, each as the weights `W [n_in, n_out]`
//! (input-major, so the forward pass is a contiguous axpy per input) followed by the bias
//! `b [n_out]`. Hidden layers apply the activation; the last layer is linear.
//!
//! Rows are processed in blocks of [`BLOCK_ROWS`] (weights reused across the block), tasks of
//! [`TASK_ROWS`] rows run in parallel and their weight gradients are summed in task order, so
//! every result is bitwise independent of the thread count. Scratch, partial gradients and
//! transposed weights live in a pool of workspaces kept between calls (steady-state training
//! allocates nothing here). When a forward pass's activations fit in [`KEEP_BYTES`] (the
//! isotropic 51×51 network's 351 rows take 1 MB) they are kept, and a VJP at bit-identical
//! parameters and inputs — training's VJP follows the forward pass of the same epoch — skips the
//! recomputation; otherwise each block is recomputed just before its backward pass.
//!
//! Every layer is one register-tiled matrix product (`gemm_acc`: each output sums its terms in
//! the naive loop's order) compiled plain and for AVX2 with the same bits; `tanh` is a
//! branch-free version that vectorises (the C library's is a scalar call that dominated).

use crate::operator::spec::Activation;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use crate::alloc::Pool;
use rayon::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// Rows per inner block (activations of one block stay in L1/L2).
pub const BLOCK_ROWS: usize = 32;
/// Rows per parallel task; its gradient is one partial sum (fixed, thread-count independent).
pub const TASK_ROWS: usize = 64;
/// Slope of the leaky ReLU for negative inputs.
pub const LEAKY_SLOPE: f64 = 0.01;

/// One dense layer's place in the parameter vector.
#[derive(Clone, Debug)]
struct Layer {
    n_in: usize,
    n_out: usize,
    /// Offset of `W [n_in, n_out]`; the bias follows it.
    offset: usize,
}

impl Layer {
    fn weights<'a>(&self, p: &'a [f64]) -> &'a [f64] {
        &p[self.offset..self.offset + self.n_in * self.n_out]
    }
    fn bias<'a>(&self, p: &'a [f64]) -> &'a [f64] {
        let s = self.offset + self.n_in * self.n_out;
        &p[s..s + self.n_out]
    }
    fn n_params(&self) -> usize {
        (self.n_in + 1) * self.n_out
    }
}

/// A dense network `n_in → width (×depth, activation) → n_out (linear)`.
#[derive(Clone, Debug)]
pub struct Mlp {
    n_in: usize,
    width: usize,
    n_out: usize,
    activation: Activation,
    layers: Vec<Layer>,
    n_params: usize,
    /// Buffers of [`Mlp::forward`] and [`Mlp::vjp`], kept between calls.
    pool: Pool<NetWorkspace>,
}

/// Most bytes of activations a workspace keeps from a forward pass for the VJP at the same
/// parameters and inputs (beyond it, the VJP recomputes them block by block).
const KEEP_BYTES: usize = 16 << 20;

/// What a forward or VJP call needs besides its arguments: scratch (one per worker thread, or
/// one per block of rows when the activations are kept), per task its partial weight gradient
/// and the block outputs a recomputing VJP needs, and the transposed weights.
#[derive(Default)]
struct NetWorkspace {
    per_thread: Vec<Mutex<Scratch>>,
    per_block: Vec<Mutex<Scratch>>,
    /// The parameters and inputs whose activations `per_block` holds, if it holds any.
    kept_params: Vec<f64>,
    kept_inputs: Vec<f64>,
    kept: bool,
    partials: Vec<Vec<f64>>,
    outputs: Vec<Vec<f64>>,
    wt: Vec<f64>,
}

impl NetWorkspace {
    /// Size the scratch for `rows` rows: one per block if `keep`, else one per thread.
    fn prepare(&mut self, net: &Mlp, rows: usize, keep: bool) {
        let (buffers, n) = if keep {
            (&mut self.per_block, rows.div_ceil(BLOCK_ROWS))
        } else {
            (&mut self.per_thread, rayon::current_num_threads().max(1))
        };
        while buffers.len() < n {
            buffers.push(Mutex::new(net.scratch()));
        }
    }

    /// Whether `per_block` holds the activations of exactly these parameters and inputs (bit
    /// for bit).
    fn holds(&self, params: &[f64], inputs: &[f64]) -> bool {
        let same = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        self.kept && same(&self.kept_params, params) && same(&self.kept_inputs, inputs)
    }

    fn remember(&mut self, params: &[f64], inputs: &[f64]) {
        self.kept_params.clear();
        self.kept_params.extend_from_slice(params);
        self.kept_inputs.clear();
        self.kept_inputs.extend_from_slice(inputs);
        self.kept = true;
    }

    /// The scratch of global block `block`: its own when activations are kept, else the calling
    /// worker thread's (uncontended: one per thread).
    fn scratch(&self, keep: bool, block: usize) -> MutexGuard<'_, Scratch> {
        let m = if keep {
            &self.per_block[block]
        } else {
            &self.per_thread[rayon::current_thread_index().unwrap_or(0) % self.per_thread.len()]
        };
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Scratch of one block of rows: activations and activation derivatives of every hidden layer,
/// and two back-propagation buffers.
struct Scratch {
    deriv: Vec<f64>,
    act: Vec<f64>,
    delta: Vec<f64>,
    delta_next: Vec<f64>,
}

impl Mlp {
    /// `depth` hidden layers of `width` units (depth 0 gives an affine map).
    pub fn new(n_in: usize, width: usize, depth: usize, n_out: usize, activation: Activation) -> Self {
        let mut layers = Vec::with_capacity(depth + 1);
        let mut offset = 0;
        let mut fan_in = n_in;
        for l in 0..=depth {
            let n_out_l = if l == depth { n_out } else { width };
            let layer = Layer { n_in: fan_in, n_out: n_out_l, offset };
            offset += layer.n_params();
            layers.push(layer);
            fan_in = n_out_l;
        }
        Self { n_in, width, n_out, activation, layers, n_params: offset, pool: Pool::default() }
    }

    pub fn n_in(&self) -> usize {
        self.n_in
    }
    pub fn n_out(&self) -> usize {
        self.n_out
    }
    pub fn n_params(&self) -> usize {
        self.n_params
    }
    pub fn activation(&self) -> Activation {
        self.activation
    }
    fn depth(&self) -> usize {
        self.layers.len() - 1
    }

    /// Initial parameters from `seed`: Xavier-normal (std √(2/(fan_in+fan_out))) for tanh, He-normal
    /// (std √(2/fan_in)) for the ReLU family and SiLU; zero biases; the last layer's weights are
    /// multiplied by `last_gain` (a small gain keeps the initial outputs small).
    pub fn init(&self, seed: u64, last_gain: f64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![0.0; self.n_params];
        for (l, layer) in self.layers.iter().enumerate() {
            let (fi, fo) = (layer.n_in as f64, layer.n_out as f64);
            let std = match self.activation {
                Activation::Tanh => (2.0 / (fi + fo)).sqrt(),
                Activation::Relu | Activation::LeakyRelu | Activation::Silu => (2.0 / fi).sqrt(),
            };
            let gain = if l == self.depth() { last_gain } else { 1.0 };
            let normal = Normal::new(0.0, std * gain).expect("finite positive std");
            for w in &mut p[layer.offset..layer.offset + layer.n_in * layer.n_out] {
                *w = normal.sample(&mut rng);
            }
        }
        p
    }

    /// Lengths of a [`Scratch`]'s hidden-layer buffers and of each back-propagation buffer.
    fn scratch_lens(&self) -> (usize, usize) {
        (self.depth() * BLOCK_ROWS * self.width, BLOCK_ROWS * self.width.max(self.n_out).max(self.n_in))
    }

    /// Bytes of one [`Scratch`].
    fn scratch_bytes(&self) -> usize {
        let (hidden, delta) = self.scratch_lens();
        2 * (hidden + delta) * std::mem::size_of::<f64>()
    }

    fn scratch(&self) -> Scratch {
        let (hidden, delta) = self.scratch_lens();
        Scratch { deriv: vec![0.0; hidden], act: vec![0.0; hidden], delta: vec![0.0; delta], delta_next: vec![0.0; delta] }
    }

    fn check(&self, params: &[f64], inputs: &[f64], outputs_len: usize) -> usize {
        assert_eq!(params.len(), self.n_params, "mlp: parameter vector length");
        assert_eq!(inputs.len() % self.n_in, 0, "mlp: input length not a multiple of n_in");
        let rows = inputs.len() / self.n_in;
        assert_eq!(outputs_len, rows * self.n_out, "mlp: output length");
        rows
    }

    /// `outputs [rows, n_out] = net(inputs [rows, n_in])`, both row-major.
    pub fn forward(&self, params: &[f64], inputs: &[f64], outputs: &mut [f64]) {
        let rows = self.check(params, inputs, outputs.len());
        let keep = self.keeps(rows);
        self.pool.with(
            |_| true,
            |ws| {
                ws.prepare(self, rows, keep);
                ws.kept = false;
                let ws_ref = &*ws;
                let per_task = TASK_ROWS / BLOCK_ROWS;
                inputs.par_chunks(TASK_ROWS * self.n_in).zip(outputs.par_chunks_mut(TASK_ROWS * self.n_out)).enumerate().for_each(|(t, (x, y))| {
                    let blocks = x.chunks(BLOCK_ROWS * self.n_in).zip(y.chunks_mut(BLOCK_ROWS * self.n_out));
                    for (b, (xb, yb)) in blocks.enumerate() {
                        let s = &mut *ws_ref.scratch(keep, t * per_task + b);
                        crate::simd_dispatch!(forward_block_k(self, params, xb, yb, s));
                    }
                });
                if keep {
                    ws.remember(params, inputs);
                }
            },
        )
    }

    /// Whether a forward pass over `rows` rows keeps its activations for the VJP.
    fn keeps(&self, rows: usize) -> bool {
        rows.div_ceil(BLOCK_ROWS) * self.scratch_bytes() <= KEEP_BYTES
    }

    /// `d_params += (∂outputs/∂params)ᵀ d_outputs` at `inputs` (rows as in [`Mlp::forward`]).
    /// Deterministic: partial sums per task of [`TASK_ROWS`] rows, added in task order.
    pub fn vjp(&self, params: &[f64], inputs: &[f64], d_outputs: &[f64], d_params: &mut [f64]) {
        let rows = self.check(params, inputs, d_outputs.len());
        assert_eq!(d_params.len(), self.n_params, "mlp: gradient length");
        let keep = self.keeps(rows);
        self.pool.with(
            |ws| ws.holds(params, inputs),
            |ws| {
                // Activations kept from the forward pass at these parameters and inputs are
                // used as they are (the same bits a recomputation gives).
                let fresh = keep && ws.holds(params, inputs);
                ws.prepare(self, rows, keep);
                self.transposed_weights_into(params, &mut ws.wt);
                let n_tasks = rows.div_ceil(TASK_ROWS);
                ws.partials.resize_with(n_tasks, Vec::new);
                ws.outputs.resize_with(n_tasks, Vec::new);
                for (g, y) in ws.partials.iter_mut().zip(&mut ws.outputs) {
                    g.clear();
                    g.resize(self.n_params, 0.0);
                    y.resize(BLOCK_ROWS * self.n_out, 0.0);
                }
                let mut partials = std::mem::take(&mut ws.partials);
                let mut outputs = std::mem::take(&mut ws.outputs);
                let ws_ref = &*ws;
                let per_task = TASK_ROWS / BLOCK_ROWS;
                inputs
                    .par_chunks(TASK_ROWS * self.n_in)
                    .zip(d_outputs.par_chunks(TASK_ROWS * self.n_out))
                    .zip(partials.par_iter_mut())
                    .zip(outputs.par_iter_mut())
                    .enumerate()
                    .for_each(|(t, (((x, dy), g), y))| {
                        let blocks = x.chunks(BLOCK_ROWS * self.n_in).zip(dy.chunks(BLOCK_ROWS * self.n_out));
                        for (b, (xb, dyb)) in blocks.enumerate() {
                            let s = &mut *ws_ref.scratch(keep, t * per_task + b);
                            if !fresh {
                                crate::simd_dispatch!(forward_block_k(self, params, xb, &mut y[..dyb.len()], s));
                            }
                            crate::simd_dispatch!(backward_block_k(self, &ws_ref.wt, xb, dyb, g, s));
                        }
                    });
                for g in &partials[..n_tasks] {
                    for (d, v) in d_params.iter_mut().zip(g) {
                        *d += v;
                    }
                }
                (ws.partials, ws.outputs) = (partials, outputs);
                if keep && !fresh {
                    ws.remember(params, inputs);
                }
            },
        )
    }

    /// Tangent pass: `outputs = net(inputs)` and `d_outputs = (∂outputs/∂params) d_params`.
    /// Sequential and unblocked (used to verify [`Mlp::vjp`] by the transpose identity).
    pub fn jvp(&self, params: &[f64], d_params: &[f64], inputs: &[f64], outputs: &mut [f64], d_outputs: &mut [f64]) {
        let rows = self.check(params, inputs, outputs.len());
        assert_eq!(d_outputs.len(), outputs.len(), "mlp: tangent output length");
        let widest = self.width.max(self.n_out).max(self.n_in);
        let (mut h, mut dh) = (vec![0.0; widest], vec![0.0; widest]);
        let (mut z, mut dz) = (vec![0.0; widest], vec![0.0; widest]);
        for r in 0..rows {
            h[..self.n_in].copy_from_slice(&inputs[r * self.n_in..(r + 1) * self.n_in]);
            dh[..self.n_in].fill(0.0);
            for (l, layer) in self.layers.iter().enumerate() {
                let (w, b) = (layer.weights(params), layer.bias(params));
                let (dw, db) = (layer.weights(d_params), layer.bias(d_params));
                z[..layer.n_out].copy_from_slice(b);
                dz[..layer.n_out].copy_from_slice(db);
                for i in 0..layer.n_in {
                    let row = i * layer.n_out..(i + 1) * layer.n_out;
                    axpy(h[i], &w[row.clone()], &mut z[..layer.n_out]);
                    axpy(dh[i], &w[row.clone()], &mut dz[..layer.n_out]);
                    axpy(h[i], &dw[row], &mut dz[..layer.n_out]);
                }
                if l < self.depth() {
                    for o in 0..layer.n_out {
                        let (a, da) = activate(self.activation, z[o]);
                        h[o] = a;
                        dh[o] = da * dz[o];
                    }
                } else {
                    outputs[r * self.n_out..(r + 1) * self.n_out].copy_from_slice(&z[..self.n_out]);
                    d_outputs[r * self.n_out..(r + 1) * self.n_out].copy_from_slice(&dz[..self.n_out]);
                }
            }
        }
    }

    /// Forward pass of one block of at most [`BLOCK_ROWS`] rows, keeping hidden activations and
    /// their derivatives in `s` for the backward pass.
    #[inline(always)]
    fn forward_block(&self, p: &[f64], x: &[f64], y: &mut [f64], s: &mut Scratch) {
        let rows = x.len() / self.n_in;
        let stride = BLOCK_ROWS * self.width;
        for (l, layer) in self.layers.iter().enumerate() {
            let (w, b) = (layer.weights(p), layer.bias(p));
            let (before, this) = s.act.split_at_mut(l * stride);
            let input: &[f64] = if l == 0 { x } else { &before[(l - 1) * stride..] };
            let hidden = l < self.depth();
            // Hidden layers: pre-activations into `this`, then activated in place.
            let out: &mut [f64] = if hidden { &mut this[..stride] } else { y };
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            for zr in out[..rows * n_out].chunks_exact_mut(n_out) {
                zr.copy_from_slice(b);
            }
            // z = b + Σ_i x_i W_i, the inputs i in order.
            gemm_acc(rows, n_in, n_out, &input[..rows * n_in], (n_in, 1), w, &mut out[..rows * n_out]);
            if hidden {
                let n = rows * n_out;
                activate_slice(self.activation, &mut this[..n], &mut s.deriv[l * stride..l * stride + n]);
            }
        }
    }

    /// Backward pass of one block after [`Mlp::forward_block`]: accumulate weight gradients into
    /// `g`; `wt` holds every layer's transposed weights (see [`Mlp::transposed_weights_into`]).
    #[inline(always)]
    fn backward_block(&self, wt: &[f64], x: &[f64], dy: &[f64], g: &mut [f64], s: &mut Scratch) {
        let rows = x.len() / self.n_in;
        let stride = BLOCK_ROWS * self.width;
        s.delta[..dy.len()].copy_from_slice(dy);
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let input: &[f64] = if l == 0 { x } else { &s.act[(l - 1) * stride..l * stride] };
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            let delta = &s.delta[..rows * n_out];
            {
                let (gw, gb) = g[layer.offset..layer.offset + layer.n_params()].split_at_mut(n_in * n_out);
                for dr in delta.chunks_exact(n_out) {
                    for (b, &d) in gb.iter_mut().zip(dr) {
                        *b += d;
                    }
                }
                // ∂W += xᵀ δ, the rows in order.
                gemm_acc(n_in, rows, n_out, &input[..rows * n_in], (1, n_in), delta, gw);
            }
            if l == 0 {
                break;
            }
            // δ_{l−1} = (δ_l Wᵀ) ⊙ σ'(z_{l−1}).
            let next = &mut s.delta_next[..rows * n_in];
            next.fill(0.0);
            gemm_acc(rows, n_out, n_in, delta, (n_out, 1), &wt[layer.offset..layer.offset + n_in * n_out], next);
            for (d, &sd) in next.iter_mut().zip(&s.deriv[(l - 1) * stride..(l - 1) * stride + rows * n_in]) {
                *d *= sd;
            }
            std::mem::swap(&mut s.delta, &mut s.delta_next);
        }
    }

    /// Every layer's weights transposed to `[n_out, n_in]`, at the layer's offset (biases unused):
    /// the backward pass then streams contiguous rows as the forward pass does.
    fn transposed_weights_into(&self, p: &[f64], wt: &mut Vec<f64>) {
        wt.resize(self.n_params, 0.0);
        for layer in &self.layers {
            let w = layer.weights(p);
            let t = &mut wt[layer.offset..layer.offset + layer.n_in * layer.n_out];
            for i in 0..layer.n_in {
                for o in 0..layer.n_out {
                    t[o * layer.n_in + i] = w[i * layer.n_out + o];
                }
            }
        }
    }
}

// The block passes compiled plain and for AVX2 (same bits: no FMA contraction, only wider vectors).
crate::simd_kernel!(forward_block_k, forward_block_kernel, (net: &Mlp, p: &[f64], x: &[f64], y: &mut [f64], s: &mut Scratch));
crate::simd_kernel!(backward_block_k, backward_block_kernel, (net: &Mlp, wt: &[f64], x: &[f64], dy: &[f64], g: &mut [f64], s: &mut Scratch));

#[inline(always)]
fn forward_block_kernel(net: &Mlp, p: &[f64], x: &[f64], y: &mut [f64], s: &mut Scratch) {
    net.forward_block(p, x, y, s)
}

#[inline(always)]
fn backward_block_kernel(net: &Mlp, wt: &[f64], x: &[f64], dy: &[f64], g: &mut [f64], s: &mut Scratch) {
    net.backward_block(wt, x, dy, g, s)
}

/// Rows of the register tile of [`gemm_acc`].
const TILE_M: usize = 4;
/// Columns of the register tile of [`gemm_acc`] (two AVX2 vectors).
const TILE_N: usize = 8;

/// `c [m×n] += a [m×k] · b [k×n]` with `b`, `c` row-major and `a[i][p] = a[i·s₀ + p·s₁]` for
/// `(s₀, s₁) = a_strides` (so `a` may be a transposed view). Every entry of `c` adds its `k` terms
/// in order p = 0, 1, …, exactly as the naive triple loop does; tiles of up to
/// [`TILE_M`]×[`TILE_N`] accumulators stay in registers (edge tiles too: their width is a const
/// parameter, so a 3-output last layer does not fall back to masked memory accumulation).
#[inline(always)]
fn gemm_acc(m: usize, k: usize, n: usize, a: &[f64], a_strides: (usize, usize), b: &[f64], c: &mut [f64]) {
    debug_assert!(b.len() >= k * n && c.len() >= m * n);
    let m_full = m - m % TILE_M;
    for i0 in (0..m_full).step_by(TILE_M) {
        gemm_row_tiles::<TILE_M>(i0, k, n, a, a_strides, b, c);
    }
    for i0 in m_full..m {
        gemm_row_tiles::<1>(i0, k, n, a, a_strides, b, c);
    }
}

/// Rows `i0 .. i0 + R` of [`gemm_acc`]: full-width tiles, then one narrower tile.
#[inline(always)]
fn gemm_row_tiles<const R: usize>(i0: usize, k: usize, n: usize, a: &[f64], s: (usize, usize), b: &[f64], c: &mut [f64]) {
    let n_full = n - n % TILE_N;
    for j0 in (0..n_full).step_by(TILE_N) {
        gemm_tile::<R, TILE_N>(i0, j0, k, n, a, s, b, c);
    }
    let j0 = n_full;
    match n - n_full {
        0 => {}
        1 => gemm_tile::<R, 1>(i0, j0, k, n, a, s, b, c),
        2 => gemm_tile::<R, 2>(i0, j0, k, n, a, s, b, c),
        3 => gemm_tile::<R, 3>(i0, j0, k, n, a, s, b, c),
        4 => gemm_tile::<R, 4>(i0, j0, k, n, a, s, b, c),
        5 => gemm_tile::<R, 5>(i0, j0, k, n, a, s, b, c),
        6 => gemm_tile::<R, 6>(i0, j0, k, n, a, s, b, c),
        7 => gemm_tile::<R, 7>(i0, j0, k, n, a, s, b, c),
        _ => unreachable!("edge narrower than a tile"),
    }
}

/// One R×W tile of `c` at (`i0`, `j0`), accumulated in registers over p = 0 … k−1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_tile<const R: usize, const W: usize>(i0: usize, j0: usize, k: usize, n: usize, a: &[f64], (s0, s1): (usize, usize), b: &[f64], c: &mut [f64]) {
    if k == 0 {
        return;
    }
    let mut acc = [[0.0; W]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&c[(i0 + r) * n + j0..(i0 + r) * n + j0 + W]);
    }
    // Every index the loop reads, checked once here instead of per element (the checks and
    // their address arithmetic otherwise cost more than the multiply–adds).
    assert!((i0 + R - 1) * s0 + (k - 1) * s1 < a.len(), "gemm: a too short");
    assert!((k - 1) * n + j0 + W <= b.len(), "gemm: b too short");
    for p in 0..k {
        // SAFETY: p < k and r < R, so both indices are within the bounds asserted above.
        let bp: &[f64; W] = unsafe { &*b.as_ptr().add(p * n + j0).cast::<[f64; W]>() };
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = unsafe { *a.get_unchecked((i0 + r) * s0 + p * s1) };
            for q in 0..W {
                row[q] += ar * bp[q];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[(i0 + r) * n + j0..(i0 + r) * n + j0 + W].copy_from_slice(row);
    }
}

/// Activation value and derivative at `z`.
#[inline(always)]
pub fn activate(kind: Activation, z: f64) -> (f64, f64) {
    match kind {
        Activation::Relu => {
            if z > 0.0 {
                (z, 1.0)
            } else {
                (0.0, 0.0)
            }
        }
        Activation::LeakyRelu => {
            if z > 0.0 {
                (z, 1.0)
            } else {
                (LEAKY_SLOPE * z, LEAKY_SLOPE)
            }
        }
        Activation::Tanh => {
            let t = tanh(z);
            (t, 1.0 - t * t)
        }
        Activation::Silu => {
            let sig = sigmoid(z);
            (z * sig, sig * (1.0 + z * (1.0 - sig)))
        }
    }
}

/// [`activate`] over a slice: `z` becomes the activations, `deriv` their derivatives. The match
/// sits outside the loops so each one vectorises.
#[inline(always)]
pub fn activate_slice(kind: Activation, z: &mut [f64], deriv: &mut [f64]) {
    let pairs = z.iter_mut().zip(deriv.iter_mut());
    match kind {
        Activation::Tanh => {
            for (a, d) in pairs {
                let t = tanh(*a);
                *a = t;
                *d = 1.0 - t * t;
            }
        }
        other => {
            for (a, d) in pairs {
                (*a, *d) = activate(other, *a);
            }
        }
    }
}

/// tanh, branch-free so that a slice of them vectorises (the C library's `tanh` is a scalar call
/// and was most of a small network's forward pass); within 3 ulp of the C library's value
/// (tested), exactly odd, and the same bits on every instruction set (only + − × ÷).
///
/// `tanh|z| = −m/(2 + m)` with `m = expm1(−2|z|)`; `expm1(y) = 2ⁿ·expm1(r) + (2ⁿ − 1)` for
/// `y = n·ln2 + r`, |r| ≤ ln2/2, and `expm1(r)` by its Taylor series to r¹⁴ (truncation < 2·10⁻¹⁷
/// relative). Below y = −40, tanh|z| rounds to 1 anyway, so y is clamped there.
#[inline(always)]
pub fn tanh(z: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵²: adding it rounds to an integer
    let y = -2.0 * z.abs();
    let y = if y < -40.0 { -40.0 } else { y }; // NaN passes through
    let t = y * std::f64::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    // 2ⁿ from the integer in the low mantissa bits of `t` (n ∈ [−58, 0]).
    let two_n = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 87_178_291_200.0; // 1/14!
    for k in (2..=13).rev() {
        p = p * r + INV_FACTORIAL[k];
    }
    let expm1_r = (p * r + 1.0) * r;
    let m = two_n * expm1_r + (two_n - 1.0);
    let t = -m / (2.0 + m);
    t.copysign(z)
}

/// 1/k! for k = 0 … 13.
const INV_FACTORIAL: [f64; 14] = {
    let mut f = [1.0; 14];
    let mut k = 1;
    while k < 14 {
        f[k] = f[k - 1] / k as f64;
        k += 1;
    }
    f
};

/// Logistic function, overflow-free.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eᶻ)` and its derivative (the logistic function), overflow-free.
#[inline]
pub fn softplus(z: f64) -> (f64, f64) {
    let value = if z > 0.0 { z + (-z).exp().ln_1p() } else { z.exp().ln_1p() };
    (value, sigmoid(z))
}

#[inline]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Normalised cell-centre coordinate of index `i` of `n`: `(2i + 1 − n)/n ∈ (−1, 1)`, exactly odd
/// under `i → n − 1 − i` (so mirror symmetrisations are exact).
#[inline]
pub fn centred_coordinate(i: usize, n: usize) -> f64 {
    (2.0 * i as f64 + 1.0 - n as f64) / n as f64
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free tanh against the C library's: within 3 ulp over 12 decades and both signs,
    /// exactly odd, 1 far out, NaN in → NaN out.
    #[test]
    fn tanh_is_accurate_and_odd() {
        let mut worst = 0.0f64;
        for e in -120..=15 {
            for m in 0..200 {
                let z = (1.0 + m as f64 / 200.0) * 2f64.powf(e as f64 / 8.0);
                for z in [z, -z] {
                    let (fast, libm) = (tanh(z), z.tanh());
                    let ulp = libm.abs() * f64::EPSILON;
                    worst = worst.max((fast - libm).abs() / ulp);
                    assert_eq!(tanh(-z).to_bits(), (-tanh(z)).to_bits());
                }
            }
        }
        assert!(worst <= 3.0, "tanh off by {worst} ulp");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-1e300), -1.0);
        assert!(tanh(f64::NAN).is_nan());
    }

    #[test]
    fn kept_activations_give_the_recomputed_gradient() {
        // 200 rows keep their activations, 9000 rows (beyond KEEP_BYTES at width 64) do not.
        for rows in [200, 9000] {
            let net = Mlp::new(2, 64, 2, 3, Activation::Tanh);
            assert_eq!(net.keeps(rows), rows == 200);
            let p = net.init(3, 0.5);
            let q: Vec<f64> = p.iter().map(|v| v * 1.01).collect();
            let x: Vec<f64> = (0..2 * rows).map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0).collect();
            let dy: Vec<f64> = (0..3 * rows).map(|i| ((i * 104729) % 997) as f64 / 500.0 - 1.0).collect();
            let gradient = |net: &Mlp, at: &[f64]| {
                let mut g = vec![0.0; at.len()];
                net.vjp(at, &x, &dy, &mut g);
                g.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let fresh = |at: &[f64]| gradient(&Mlp::new(2, 64, 2, 3, Activation::Tanh), at);
            let mut y = vec![0.0; 3 * rows];
            // After a forward pass at the same parameters (kept), at others (stale), and with
            // another network's pass in between: always the recomputed bits.
            net.forward(&p, &x, &mut y);
            assert_eq!(gradient(&net, &p), fresh(&p), "{rows} rows, kept");
            net.forward(&q, &x, &mut y);
            assert_eq!(gradient(&net, &p), fresh(&p), "{rows} rows, stale");
            assert_eq!(gradient(&net, &q), fresh(&q), "{rows} rows, after a VJP at other parameters");
        }
    }

    /// The tiled product equals the naive loop bit for bit, for shapes with and without edges and
    /// a transposed `a`.
    #[test]
    fn gemm_matches_naive_order() {
        for &(m, k, n) in &[(32, 64, 64), (7, 5, 3), (4, 1, 8), (13, 17, 19), (1, 64, 3)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 53 % 97) as f64 - 48.0) / 11.0).collect();
            let c0: Vec<f64> = (0..m * n).map(|i| (i % 5) as f64 * 0.1).collect();
            for transposed in [false, true] {
                // a[i][p] at i·s0 + p·s1: row-major m×k, or a k×m array read transposed.
                let strides = if transposed { (1, m) } else { (k, 1) };
                let mut c = c0.clone();
                gemm_acc(m, k, n, &a, strides, &b, &mut c);
                let mut naive = c0.clone();
                for i in 0..m {
                    for j in 0..n {
                        for p in 0..k {
                            naive[i * n + j] += a[i * strides.0 + p * strides.1] * b[p * n + j];
                        }
                    }
                }
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&c), bits(&naive), "{m}×{k}×{n} transposed={transposed}");
            }
        }
    }
}
