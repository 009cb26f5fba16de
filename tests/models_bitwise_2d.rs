//! The 2D operator models give exactly the bits they gave before the models became generic over
//! the dimension: FNV-1a hashes of the f64 bit patterns of `node_fields` and `node_fields_vjp`
//! for every 2D kind (with and without `nonnegative_d`, every MLP symmetry, time nodes, run
//! conditioners), on a small square grid with fixed pseudo-random θ and cotangents. The expected
//! hashes were recorded from the 2D-only models.

use colop::grid::VelocityGrid;
use colop::operator::{build, BuildInfo, Fields, ModelSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a over the bit patterns of `values`.
fn hash(values: &[f64]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        v.to_bits().to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
    })
}

/// Hashes of (fields of the last node, θ-gradient summed over nodes) for one model.
fn hashes(yaml: &str) -> [u64; 2] {
    let grid = VelocityGrid::square(9, 3.0).unwrap();
    let spec: ModelSpec = serde_yaml::from_str(yaml).unwrap();
    let info = BuildInfo { grid: grid.clone(), cond_ranges: vec![(0.5, 2.0); spec.conditioners.len()], t_span: 2.0 };
    let m = build(&spec, &info).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261202);
    let theta: Vec<f64> = m.init_params(7).iter().map(|t| t + rng.gen_range(-0.05..0.05)).collect();
    let cond: Vec<f64> = (0..spec.conditioners.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let n = m.n_fields() * grid.n_cells();
    let mut fields = Fields::zeros((m.n_fields(), grid.nx, grid.ny));
    let mut d_theta = vec![0.0; m.n_params()];
    for node in 0..m.n_time_nodes() {
        m.node_fields(&theta, &cond, node, &mut fields);
        let d = Fields::from_shape_vec((m.n_fields(), grid.nx, grid.ny), (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap();
        m.node_fields_vjp(&theta, &cond, node, &d, &mut d_theta);
    }
    [hash(fields.as_slice().unwrap()), hash(&d_theta)]
}

const CASES: [&str; 16] = [
    "{kind: tensor}",
    "{kind: tensor, nonnegative_d: true}",
    "{kind: tensor-sym}",
    "{kind: tensor-sym, nonnegative_d: true}",
    "{kind: par-perp}",
    "{kind: par-perp, nonnegative_d: true, n_radial: 4}",
    "{kind: tensor-time, n_t: 3}",
    "{kind: par-perp-time, n_t: 2, nonnegative_d: true}",
    "{kind: mlp, width: 6, depth: 2}",
    "{kind: mlp, width: 5, depth: 1, symmetry: mirror, activation: silu}",
    "{kind: mlp, width: 6, depth: 2, symmetry: isotropic}",
    "{kind: mlp, width: 4, depth: 2, symmetry: isotropic, nonnegative_d: true}",
    "{kind: mlp, width: 4, depth: 1, symmetry: mirror, nonnegative_d: true}",
    "{kind: mlp, width: 4, depth: 1, nonnegative_d: true, activation: relu}",
    "{kind: mlp-conditioned, width: 5, depth: 2, conditioners: [a, b]}",
    "{kind: mlp-conditioned, width: 4, depth: 1, symmetry: isotropic, conditioners: [a]}",
];

#[test]
fn two_dimensional_models_are_bitwise_unchanged() {
    let got: Vec<[u64; 2]> = CASES.iter().map(|c| hashes(c)).collect();
    let expected: [[u64; 2]; 16] = [
        [0x20a44e60944ca8d5, 0xce0dcca43bbac9c4],
        [0x25a982cd2774869a, 0xe8aec8ca2e215182],
        [0xdd1c84cc24884fb5, 0x24eb9c585b4a4ce6],
        [0xf151c34b5db72865, 0x257708aa5d948542],
        [0xc3fa2130a8244532, 0x62fb2edd8586ef4f],
        [0xda8a4303993fd38c, 0x0d4b36040323c6b4],
        [0x2b1ff6c63cf08508, 0x2d0a15d0ed3b9fc6],
        [0xbaedf6880c3a4a92, 0x51781a7a416ded0e],
        [0x8b849ebe57aa1689, 0x25076f7d40fe8b8b],
        [0x6a428121a272ccf5, 0x584fb7e96a69d0ce],
        [0xaafbb8b8f9fd35b3, 0x2fdd5ea5f1754fac],
        [0x6f034e4fb7b4d5fb, 0x1a9b0e0ebb0c21a6],
        [0x0044db78fff07b01, 0xbc8e693722026de5],
        [0xe8e0a0d1d2d810ee, 0xbd88eb0eb1b013a1],
        [0x773bf479cee59d32, 0x5cc32a932a340c0a],
        [0xa6911c158f827977, 0xae33bd449fc03bac],
    ];
    for ((c, h), e) in CASES.iter().zip(&got).zip(&expected) {
        assert_eq!(h, e, "{c}");
    }
}
