//! A small dense multilayer perceptron with hand-written forward, tangent (JVP) and parameter
//! vector–Jacobian passes, batched over rows (one row per grid cell).
//!
//! Layout of the parameter vector: layer after layer, each as the weights `W [n_in, n_out]`
//! (input-major, so the forward pass is a contiguous axpy per input) followed by the bias
//! `b [n_out]`. Hidden layers apply the activation; the last layer is linear.
//!
//! Rows are processed in blocks of [`BLOCK_ROWS`] (weights reused across the block, scratch
//! allocated once per rayon task, never per row), tasks of [`TASK_ROWS`] rows run in parallel and
//! their weight gradients are summed in task order, so every result is bitwise independent of the
//! thread count.

use crate::operator::spec::Activation;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// Rows per inner block (activations of one block stay in L1/L2).
pub const BLOCK_ROWS: usize = 32;
/// Rows per parallel task; its gradient is one partial sum (fixed, thread-count independent).
pub const TASK_ROWS: usize = 512;
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
}

/// Per-task scratch: activations and activation derivatives of every hidden layer for one block,
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
        Self { n_in, width, n_out, activation, layers, n_params: offset }
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

    fn scratch(&self) -> Scratch {
        let hidden = self.depth() * BLOCK_ROWS * self.width;
        let widest = self.width.max(self.n_out).max(self.n_in);
        Scratch {
            deriv: vec![0.0; hidden],
            act: vec![0.0; hidden],
            delta: vec![0.0; BLOCK_ROWS * widest],
            delta_next: vec![0.0; BLOCK_ROWS * widest],
        }
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
        self.check(params, inputs, outputs.len());
        inputs
            .par_chunks(TASK_ROWS * self.n_in)
            .zip(outputs.par_chunks_mut(TASK_ROWS * self.n_out))
            .for_each_init(
                || self.scratch(),
                |s, (x, y)| {
                    for (xb, yb) in x.chunks(BLOCK_ROWS * self.n_in).zip(y.chunks_mut(BLOCK_ROWS * self.n_out)) {
                        self.forward_block(params, xb, yb, s);
                    }
                },
            );
    }

    /// `d_params += (∂outputs/∂params)ᵀ d_outputs` at `inputs` (rows as in [`Mlp::forward`]).
    /// Deterministic: partial sums per task of [`TASK_ROWS`] rows, added in task order.
    pub fn vjp(&self, params: &[f64], inputs: &[f64], d_outputs: &[f64], d_params: &mut [f64]) {
        self.check(params, inputs, d_outputs.len());
        assert_eq!(d_params.len(), self.n_params, "mlp: gradient length");
        let partials: Vec<Vec<f64>> = inputs
            .par_chunks(TASK_ROWS * self.n_in)
            .zip(d_outputs.par_chunks(TASK_ROWS * self.n_out))
            .map_init(
                || self.scratch(),
                |s, (x, dy)| {
                    let mut g = vec![0.0; self.n_params];
                    let mut y = vec![0.0; BLOCK_ROWS * self.n_out];
                    for (xb, dyb) in x.chunks(BLOCK_ROWS * self.n_in).zip(dy.chunks(BLOCK_ROWS * self.n_out)) {
                        self.forward_block(params, xb, &mut y[..dyb.len()], s);
                        self.backward_block(params, xb, dyb, &mut g, s);
                    }
                    g
                },
            )
            .collect();
        for g in &partials {
            for (d, v) in d_params.iter_mut().zip(g) {
                *d += v;
            }
        }
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
            for r in 0..rows {
                let zr = &mut out[r * layer.n_out..(r + 1) * layer.n_out];
                zr.copy_from_slice(b);
                let xr = &input[r * layer.n_in..(r + 1) * layer.n_in];
                for (i, &xi) in xr.iter().enumerate() {
                    axpy(xi, &w[i * layer.n_out..(i + 1) * layer.n_out], zr);
                }
            }
            if hidden {
                let n = rows * layer.n_out;
                for (a, d) in this[..n].iter_mut().zip(&mut s.deriv[l * stride..l * stride + n]) {
                    (*a, *d) = activate(self.activation, *a);
                }
            }
        }
    }

    /// Backward pass of one block after [`Mlp::forward_block`]: accumulate weight gradients into `g`.
    fn backward_block(&self, p: &[f64], x: &[f64], dy: &[f64], g: &mut [f64], s: &mut Scratch) {
        let rows = x.len() / self.n_in;
        let stride = BLOCK_ROWS * self.width;
        s.delta[..dy.len()].copy_from_slice(dy);
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let input: &[f64] = if l == 0 { x } else { &s.act[(l - 1) * stride..l * stride] };
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            {
                let (gw, gb) = g[layer.offset..layer.offset + layer.n_params()].split_at_mut(n_in * n_out);
                for r in 0..rows {
                    let dr = &s.delta[r * n_out..(r + 1) * n_out];
                    for (o, &d) in dr.iter().enumerate() {
                        gb[o] += d;
                    }
                    for (i, &xi) in input[r * n_in..(r + 1) * n_in].iter().enumerate() {
                        axpy(xi, dr, &mut gw[i * n_out..(i + 1) * n_out]);
                    }
                }
            }
            if l == 0 {
                break;
            }
            // δ_{l−1} = (W δ_l) ⊙ σ'(z_{l−1}).
            let w = layer.weights(p);
            let deriv = &s.deriv[(l - 1) * stride..l * stride];
            for r in 0..rows {
                let dr = &s.delta[r * n_out..(r + 1) * n_out];
                for i in 0..n_in {
                    let back = dot(&w[i * n_out..(i + 1) * n_out], dr);
                    s.delta_next[r * n_in + i] = back * deriv[r * n_in + i];
                }
            }
            std::mem::swap(&mut s.delta, &mut s.delta_next);
        }
    }
}

/// Activation value and derivative at `z`.
#[inline]
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
            let t = z.tanh();
            (t, 1.0 - t * t)
        }
        Activation::Silu => {
            let sig = sigmoid(z);
            (z * sig, sig * (1.0 + z * (1.0 - sig)))
        }
    }
}

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

/// Dot product with four fixed accumulators (vectorisable, deterministic order).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Normalised cell-centre coordinate of index `i` of `n`: `(2i + 1 − n)/n ∈ (−1, 1)`, exactly odd
/// under `i → n − 1 − i` (so mirror symmetrisations are exact).
#[inline]
pub fn centred_coordinate(i: usize, n: usize) -> f64 {
    (2.0 * i as f64 + 1.0 - n as f64) / n as f64
}
