//! PIC config parsing and validation: the shipped config is valid, bad ones name their key.

use colop::pic::PicConfig;

const GOOD: &str = "grid: {nx: 16, ny: 16, dx: 1.0}
plasma: {ppc: 4}
time: {dt: 0.1, steps: 10, dump_every: 5}
test_particles: {n: 100, distribution: {kind: normal, center: [1.0, 0.0], sigma: 0.5}}
";

fn error_of(yaml: &str) -> String {
    let e = PicConfig::from_yaml(yaml, "bad.yaml").expect_err("config should be rejected").to_string();
    assert!(!e.contains('\n'), "one-line message: {e}");
    e
}

#[test]
fn shipped_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/pic.yaml");
    let cfg = PicConfig::load(&path).unwrap();
    assert_eq!(cfg.order(), 2);
    assert_eq!(cfg.histogram.bins, [51, 51]);
    assert_eq!(PicConfig::from_yaml(&cfg.to_yaml(), "roundtrip").unwrap(), cfg);
}

#[test]
fn bad_configs_name_their_key() {
    PicConfig::from_yaml(GOOD, "good").unwrap();
    let cases = [
        (GOOD.replace("ppc: 4", "ppc: -3"), "plasma.ppc"),
        (GOOD.replace("time:", "shape: {order: 7}\ntime:"), "shape.order"),
        (GOOD.replace("nx: 16", "nx: 3"), "grid.nx"),
        (GOOD.replace("ny: 16", "ny: 4").replace("time:", "shape: {order: 4}\ntime:"), "grid.ny"),
        (GOOD.replace("center: [1.0, 0.0]", "center: [9.0, 0.0]"), "histogram.v_range"),
        (GOOD.replace("dx: 1.0", "dx: 0"), "grid.dx"),
        (GOOD.replace("dt: 0.1", "dt: 2.5"), "time.dt"),
        (GOOD.replace("dump_every: 5", "dump_every: 0"), "time.dump_every"),
        (GOOD.replace("ppc: 4", "ppc: 5, quiet_start: true"), "plasma.ppc"),
        (GOOD.replace("sigma: 0.5}", "sigma: 0.5}, tracks: 101"), "test_particles.tracks"),
        // v_z exists with 3-D histograms only; a correlation is at most 1 in size.
        (GOOD.replace("sigma: 0.5}", "sigma: 0.5}, vz_correlation: 0.5"), "test_particles.vz_correlation"),
        (
            GOOD.replace("sigma: 0.5}", "sigma: 0.5}, vz_correlation: 1.5")
                + "histogram: {bins: [8, 8, 8], v_range: [-5, 5, -5, 5, -5, 5]}\n",
            "test_particles.vz_correlation",
        ),
    ];
    for (yaml, key) in cases {
        let e = error_of(&yaml);
        assert!(e.contains(&format!("`{key}`")), "expected key {key} in: {e}");
    }
    // Unknown keys and wrong types are parse errors that point at the key.
    let e = error_of(&GOOD.replace("ppc: 4", "ppc: 4, ppx: 1"));
    assert!(e.contains("ppx"), "{e}");
    let e = error_of(&GOOD.replace("kind: normal", "kind: gaussian"));
    assert!(e.contains("gaussian"), "{e}");
}

/// Particles that leave the histogram at load time are caught even when the centre is inside.
#[test]
fn histogram_missing_most_particles_is_an_error() {
    let yaml = GOOD.replace("center: [1.0, 0.0], sigma: 0.5", "center: [4.9, 4.9], sigma: 2.0");
    let cfg = PicConfig::from_yaml(&yaml, "t").unwrap();
    let e = colop::pic::Simulation::new(&cfg).err().expect("most particles outside").to_string();
    assert!(e.contains("histogram.v_range"), "{e}");
}
