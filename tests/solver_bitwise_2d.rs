//! The 2D Fokker–Planck schemes give exactly the bits they gave before the solver became generic
//! over the dimension: FNV-1a hashes of the f64 bit patterns of `prepare`, `step`, `step_vjp` and
//! `prepare_vjp` outputs, for both schemes, both edge modes and clamp on/off, on a small
//! non-square grid with fixed pseudo-random inputs. The expected hashes were recorded from the
//! 2D-only solver.

use colop::grid::VelocityGrid;
use colop::operator::{Equation, Fields};
use colop::solver::{build, Boundary, SchemeKind, SolverSpec, Substeps};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a over the bit patterns of `values`.
fn hash(values: &[f64]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        v.to_bits().to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
    })
}

/// Hashes of (prepare, step, lam_in, d_prepared, d_coeffs) for one scheme configuration.
fn hashes(kind: SchemeKind, boundary: Boundary, clamp: bool) -> [u64; 5] {
    let grid = VelocityGrid::new(9, 13, [-3.0, 3.5, -2.0, 2.5], "v_th").unwrap();
    let spec = SolverSpec { scheme: kind, boundary, clamp_nonnegative: clamp, substeps: Substeps::Fixed(1), ..Default::default() };
    let s = build(&spec, &Equation::FokkerPlanck, &grid).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261202);
    let n = grid.n_cells();
    let mut rand = |len: usize, lo: f64, hi: f64| (0..len).map(|_| rng.gen_range(lo..hi)).collect::<Vec<f64>>();
    // Coefficients with every sign, so every branch of the conservative rates is taken.
    let coeffs = Fields::from_shape_vec((5, grid.nx, grid.ny), rand(5 * n, -0.6, 0.6)).unwrap();
    let f = rand(n, -0.3, 1.0);
    let lam_out = rand(n, -1.0, 1.0);
    let h = 0.07;
    let np = s.n_prepared();
    let mut prepared = Fields::zeros((np, grid.nx, grid.ny));
    s.prepare(coeffs.view(), h, prepared.view_mut());
    let mut ws = s.workspace();
    let mut out = vec![0.0; n];
    s.step(&prepared, &f, &mut out, &mut ws);
    let mut lam_in = vec![0.0; n];
    let mut d_prepared = Fields::from_shape_vec((np, grid.nx, grid.ny), rand(np * n, -0.1, 0.1)).unwrap();
    s.step_vjp(&prepared, &f, &lam_out, &mut lam_in, &mut d_prepared, &mut ws);
    let mut d_coeffs = Fields::from_shape_vec((5, grid.nx, grid.ny), rand(5 * n, -0.1, 0.1)).unwrap();
    s.prepare_vjp(coeffs.view(), h, d_prepared.view(), d_coeffs.view_mut());
    [
        hash(prepared.as_slice().unwrap()),
        hash(&out),
        hash(&lam_in),
        hash(d_prepared.as_slice().unwrap()),
        hash(d_coeffs.as_slice().unwrap()),
    ]
}

#[test]
fn two_dimensional_results_are_bitwise_unchanged() {
    let cases = [
        (SchemeKind::Central, Boundary::Guard, false),
        (SchemeKind::Central, Boundary::Guard, true),
        (SchemeKind::Central, Boundary::OneSided, false),
        (SchemeKind::Central, Boundary::OneSided, true),
        (SchemeKind::Conservative, Boundary::Guard, false),
        (SchemeKind::Conservative, Boundary::Guard, true),
    ];
    let expected: [[u64; 5]; 6] = [
        [0x58b5fe70ff00df0d, 0x540e0ec5bc3df703, 0xbde106a34cc20ac5, 0x02350033a8e195b4, 0x1c7c1e314c94beb5],
        [0x58b5fe70ff00df0d, 0xe7587a1d2d31cad9, 0x6370d062dfabc478, 0x0175249584a3a985, 0xb9f29f0557283e94],
        [0x58b5fe70ff00df0d, 0xe172bbb089532458, 0xf13d916cf9fd2f0d, 0x31e996c74b28c7dd, 0xcb9f761e78295728],
        [0x58b5fe70ff00df0d, 0x8ba5ba1dd3849161, 0xc4d1252b60bbcfd6, 0x04e319488592b3a1, 0x8580a3a74014ac04],
        [0xb09703fa4f8c11d6, 0x4b892b6d25d1bc65, 0xcd466cc96cc78bfa, 0xf8e2a632e18bb1a5, 0xe835d9fb98e84e87],
        [0xb09703fa4f8c11d6, 0xfaf3740e5d315f8b, 0x46644e10251b60ab, 0x759addeed06363db, 0x3b822b3cf57a2117],
    ];
    let got: Vec<[u64; 5]> = cases.iter().map(|&(k, b, c)| hashes(k, b, c)).collect();
    for ((case, got), want) in cases.iter().zip(&got).zip(&expected) {
        assert_eq!(got, want, "{case:?}: (prepare, step, lam_in, d_prepared, d_coeffs) hashes changed");
    }
}
