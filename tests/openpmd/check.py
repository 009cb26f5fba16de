"""Write openPMD series with openPMD-api, import them with `colop import openpmd`, and check the
run files against numpy, exactly. Usage: check.py COLOP WORKDIR (run by tests/openpmd/run.sh)."""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import openpmd_api as io

COLOP, WORK = sys.argv[1], sys.argv[2]
C = 299792458.0
M_E = 9.1093837015e-31
OMEGA_P = 2.0e14          # rad/s
TIME_UNIT = 1e-15         # the series' time unit (fs): timeUnitSI ≠ 1
V_TH = 0.2                # units of c
NX, NY, RANGE = 32, 24, (-3.0, 5.0, -4.0, 4.0)
N0 = 30000
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def particles(rng, k):
    """Particles of dump k: a 3 % random subset dropped, order shuffled. Relativistic momenta
    (u = γβ up to ~1.5), non-uniform weights."""
    ids = np.arange(N0, dtype=np.uint64) * 7 + 3
    keep = rng.random(N0) > 0.03
    order = rng.permutation(np.flatnonzero(keep))
    n = order.size
    u = np.stack([0.3 + 0.25 * rng.standard_normal(n), 0.25 * rng.standard_normal(n), 0.25 * rng.standard_normal(n)])
    w = rng.uniform(0.5, 2.0, n) * 1e10
    return ids[order], u, w


def write_series(path, iterations, encoding, macro_weighted, seed):
    """A series with species `electrons` (test) and `bg` (background); returns the arrays."""
    rng = np.random.default_rng(seed)
    s = io.Series(path, io.Access.create)
    s.set_software("openpmd-check", "1.2.3")
    if encoding == "group":
        s.iteration_encoding = io.Iteration_Encoding.group_based
    truth = {}
    for n in iterations:
        it = s.iterations[n]
        it.time = n * 0.05
        it.dt = 0.05
        it.time_unit_SI = TIME_UNIT
        for name in ["electrons", "bg"]:
            ids, u, w = particles(rng, n)
            sp = it.particles[name]
            mom = sp["momentum"]
            stored = []
            for a, ax in enumerate("xyz"):
                # z in float32 in the file-based series: the reader converts exactly.
                arr = u[a] * w if macro_weighted else u[a]
                if ax == "z" and not macro_weighted:
                    arr = arr.astype(np.float32)
                arr = np.ascontiguousarray(arr)
                rc = mom[ax]
                rc.reset_dataset(io.Dataset(arr.dtype, arr.shape))
                rc.store_chunk(arr)
                rc.unit_SI = M_E * C
                stored.append(arr.astype(np.float64))
            mom.unit_dimension = {io.Unit_Dimension.L: 1, io.Unit_Dimension.M: 1, io.Unit_Dimension.T: -1}
            mom.set_attribute("macroWeighted", np.uint32(1 if macro_weighted else 0))
            mom.set_attribute("weightingPower", 1.0)
            wr = sp["weighting"][io.Record_Component.SCALAR]
            wr.reset_dataset(io.Dataset(w.dtype, w.shape))
            wr.store_chunk(w)
            wr.unit_SI = 1.0
            mass = sp["mass"][io.Record_Component.SCALAR]
            mass.reset_dataset(io.Dataset(np.dtype("float64"), [ids.size]))
            mass.make_constant(1.0)
            mass.unit_SI = M_E
            sp["mass"].unit_dimension = {io.Unit_Dimension.M: 1}
            idr = sp["id"][io.Record_Component.SCALAR]
            idr.reset_dataset(io.Dataset(ids.dtype, ids.shape))
            idr.store_chunk(ids)
            truth[(n, name)] = (ids, stored, w)
        s.flush()
        it.close()
    s.close()
    return truth


def beta(stored, w, macro_weighted):
    """β_c the way the reader documents it: p = raw·unitSI (/w if macro-weighted), m = 1·M_E,
    u = p / (m c), γ = √(((1 + ux²) + uy²) + uz²), β = u / γ."""
    m = 1.0 * M_E
    p = [s * (M_E * C) for s in stored]
    if macro_weighted:
        p = [q / w for q in p]
    u = [q / (m * C) for q in p]
    g = np.sqrt(1.0 + u[0] * u[0] + u[1] * u[1] + u[2] * u[2])
    return [q / g for q in u]


def histogram(bx, by, w):
    vx, vy = bx / V_TH, by / V_TH
    dx, dy = (RANGE[1] - RANGE[0]) / NX, (RANGE[3] - RANGE[2]) / NY
    i = np.floor((vx - RANGE[0]) / dx)
    j = np.floor((vy - RANGE[2]) / dy)
    ok = (i >= 0) & (i < NX) & (j >= 0) & (j < NY)
    cell = (i[ok] * NY + j[ok]).astype(np.int64)
    return np.bincount(cell, weights=w[ok], minlength=NX * NY).reshape(NX, NY)


def colop(*args, expect_ok=True):
    r = subprocess.run([COLOP, "-q", *args], capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        print(r.stderr)
    return r


def expected(truth, iterations, macro_weighted, n_tracks, comps=(0, 1)):
    f, tracks_ids = [], None
    for n in iterations:
        ids, stored, w = truth[(n, "electrons")]
        b = beta(stored, w, macro_weighted)
        f.append(histogram(b[comps[0]], b[comps[1]], w))
        tracks_ids = set(ids.tolist()) if tracks_ids is None else tracks_ids & set(ids.tolist())
    chosen = np.array(sorted(tracks_ids)[:n_tracks], dtype=np.uint64)
    tr = []
    for n in iterations:
        ids, stored, w = truth[(n, "electrons")]
        b = beta(stored, w, macro_weighted)
        pos = {int(v): p for p, v in enumerate(ids)}
        idx = np.array([pos[int(c)] for c in chosen])
        tr.append(np.stack([b[comps[0]][idx] / V_TH, b[comps[1]][idx] / V_TH], axis=1))
    t = np.array([(n * 0.05 * TIME_UNIT) * OMEGA_P for n in iterations])
    return np.array(f), t, np.array(tr)


def check_run(out, truth, iterations, macro_weighted, label, n_tracks=40):
    f, t, tr = expected(truth, iterations, macro_weighted, n_tracks)
    with h5py.File(out, "r") as h:
        check(np.array_equal(h["f"][...], f), f"{label}: histograms equal numpy's bit for bit")
        check(np.array_equal(h["t"][...], t), f"{label}: times are ω_p·time·timeUnitSI")
        check(np.array_equal(h["tracks"][...], tr), f"{label}: tracks are the first {n_tracks} common ids")
        check(h.attrs["n_particles"] == f[0].sum() or abs(h.attrs["n_particles"] / f[0].sum() - 1) < 1e-14, f"{label}: n_particles")
        check(list(h.attrs["v_range"]) == list(RANGE), f"{label}: v_range")
        p = h["params"].attrs
        check(p["v_th"] == V_TH and p["omega_p"] == OMEGA_P and p["run_id"] == 4.0, f"{label}: params")
        soft = [p[k].decode() if isinstance(p[k], bytes) else p[k] for k in ("software", "softwareVersion")]
        check(soft == ["openpmd-check", "1.2.3"], f"{label}: series software attributes kept as /params labels")
    print(f"     {label}: {f.shape[0]} snapshots, Σf[0] = {f[0].sum():.6g}, off-grid weight {1 - f[0].sum() / truth[(iterations[0], 'electrons')][2].sum():.3%}")


common = ["--species", "electrons", "--v-th", str(V_TH), "--omega-p", str(OMEGA_P), "--bins", f"{NX},{NY}",
          "--v-range", ",".join(map(str, RANGE)), "--tracks", "40", "--params", "run_id=4"]

# File-based series, plain momenta (z stored as float32).
fb_dir = os.path.join(WORK, "fb")
os.makedirs(fb_dir)
fb_its = [0, 40, 80, 120]
truth_fb = write_series(os.path.join(fb_dir, "data_%06T.h5"), fb_its, "file", False, 1)
out = os.path.join(WORK, "fb.h5")
r = colop("import", "openpmd", os.path.join(fb_dir, "data_%06T.h5"), "--out", out, *common)
check(r.returncode == 0, "file-based import succeeds")
if r.returncode == 0:
    check_run(out, truth_fb, fb_its, False, "file-based")
# Unevenly spaced dumps (iteration 80 left out): imported with a warning, /t holds their times.
gap_dir = os.path.join(WORK, "fb_gap")
os.makedirs(gap_dir)
for n in [0, 40, 120]:
    shutil.copy(os.path.join(fb_dir, f"data_{n:06d}.h5"), gap_dir)
out = os.path.join(WORK, "fb_gap.h5")
r = colop("import", "openpmd", gap_dir, "--out", out, *common)
check(r.returncode == 0 and "not evenly spaced" in r.stderr, "uneven dumps are imported with a warning")
if r.returncode == 0:
    check_run(out, truth_fb, [0, 40, 120], False, "file-based, uneven dumps")
# Any one file names the whole series; --iterations selects; thread counts agree bit for bit.
out1 = os.path.join(WORK, "fb_sel_1.h5")
out2 = os.path.join(WORK, "fb_sel_2.h5")
r1 = colop("--threads", "1", "import", "openpmd", os.path.join(fb_dir, "data_000080.h5"), "--out", out1, "--iterations", "40::40", *common)
r2 = colop("--threads", "2", "import", "openpmd", fb_dir, "--out", out2, "--iterations", "40::40", *common)
check(r1.returncode == 0 and r2.returncode == 0, "one file / the folder name the series; --iterations 40::40")
if r1.returncode == 0 and r2.returncode == 0:
    check_run(out1, truth_fb, [40, 80, 120], False, "file-based, iterations 40::40")
    with h5py.File(out1, "r") as a, h5py.File(out2, "r") as b:
        check(np.array_equal(a["f"][...], b["f"][...]) and np.array_equal(a["tracks"][...], b["tracks"][...]), "1 and 2 threads give identical run files")

# Group-based series, macro-weighted momenta; mass rewritten as fbpic does (constant of shape [1]).
gb = os.path.join(WORK, "gb.h5")
gb_its = [5, 15, 25]
truth_gb = write_series(gb, gb_its, "group", True, 2)
with h5py.File(gb, "r+") as h:
    for n in gb_its:
        for sp in ["electrons", "bg"]:
            h[f"data/{n}/particles/{sp}/mass"].attrs["shape"] = np.array([1], dtype=np.uint64)
            # fbpic 0.27 also labels mass as a length: warned about, not refused.
            h[f"data/{n}/particles/{sp}/mass"].attrs["unitDimension"] = np.array([1.0, 0, 0, 0, 0, 0, 0])
out = os.path.join(WORK, "gb_run.h5")
r = colop("import", "openpmd", gb, "--out", out, *common)
check(r.returncode == 0, "group-based, macro-weighted import succeeds (mass as fbpic writes it: shape [1], labelled a length)")
if r.returncode == 0:
    check_run(out, truth_gb, gb_its, True, "group-based")

# A velocity record (no momentum) in m/s, stored as β with unitSI = c.
vel = os.path.join(WORK, "vel.h5")
rng = np.random.default_rng(5)
s = io.Series(vel, io.Access.create)
s.iteration_encoding = io.Iteration_Encoding.group_based
truth_vel = {}
for n in [0, 1, 2]:
    it = s.iterations[n]
    it.time, it.dt, it.time_unit_SI = n * 0.05, 0.05, TIME_UNIT
    sp = it.particles["electrons"]
    b = np.ascontiguousarray(rng.uniform(-0.6, 0.6, (3, 5000)))
    w = rng.uniform(0.5, 2.0, 5000)
    for a, ax in enumerate("xyz"):
        rc = sp["velocity"][ax]
        rc.reset_dataset(io.Dataset(b[a].dtype, b[a].shape))
        rc.store_chunk(np.ascontiguousarray(b[a]))
        rc.unit_SI = C
    sp["velocity"].unit_dimension = {io.Unit_Dimension.L: 1, io.Unit_Dimension.T: -1}
    wr = sp["weighting"][io.Record_Component.SCALAR]
    wr.reset_dataset(io.Dataset(w.dtype, w.shape))
    wr.store_chunk(w)
    truth_vel[n] = (b, w)
    s.flush()
    it.close()
s.close()
out = os.path.join(WORK, "vel_run.h5")
r = colop("import", "openpmd", vel, "--out", out, *common[:-4])
check(r.returncode == 0, "velocity-record import succeeds")
if r.returncode == 0:
    with h5py.File(out, "r") as h:
        want = np.array([histogram((b[0] * C) / C, (b[1] * C) / C, w) for b, w in truth_vel.values()])
        check(np.array_equal(h["f"][...], want), "velocity record: histograms of (v·unitSI)/c equal numpy's bit for bit")

# v_th measured on the background species.
out = os.path.join(WORK, "vth.h5")
args = [a for a in common]
i = args.index("--v-th")
args[i:i + 2] = ["--v-th-from", "bg"]
r = colop("import", "openpmd", gb, "--out", out, *args)
check(r.returncode == 0, "--v-th-from bg succeeds")
if r.returncode == 0:
    _, stored, w = truth_gb[(5, "bg")]
    b = beta(stored, w, True)
    var = sum(np.sum(w * (q - np.sum(w * q) / w.sum()) ** 2) for q in b[:2]) / w.sum()
    want = np.sqrt(0.5 * var)
    with h5py.File(out, "r") as h:
        got = h["params"].attrs["v_th"]
    check(abs(got / want - 1) < 1e-12, f"--v-th-from: v_th = {got:.15g} c, numpy {want:.15g}")

# Errors: one line, naming what is wrong and what the file has.
def fails(args, text, what):
    r = colop(*args, expect_ok=False)
    errors = [l for l in r.stderr.splitlines() if "error" in l]   # warnings may precede it
    msg = errors[-1] if errors else r.stderr.strip()
    check(r.returncode != 0 and text in msg and len(errors) == 1, f"{what}: {msg[-160:]!r}")


base = ["--v-th", "0.2", "--omega-p", "1e14", "--out", os.path.join(WORK, "bad.h5")]
fails(["import", "openpmd", gb, "--species", "ions", *base], "species present: bg, electrons", "missing species")
fails(["import", "openpmd", gb, "--species", "electrons", "--iterations", "100:", *base],
      "no iteration selected by --iterations; the series has 3 iterations (5 … 25)", "empty iteration selection")
fails(["import", "openpmd", gb, "--species", "electrons", "--iterations", "15", *base], "at least 2 are needed", "one iteration")
fails(["import", "openpmd", os.path.join(WORK, "series.bp"), "--species", "electrons", *base], "ADIOS2", "ADIOS2 refused")
fails(["import", "openpmd", gb, "--species", "electrons", "--components", "ux,uy,uz", *base],
      "3-D velocity histograms are not supported yet", "third component refused")
bad = os.path.join(WORK, "bad_dim.h5")
shutil.copy(gb, bad)
with h5py.File(bad, "r+") as h:
    h["data/5/particles/electrons/momentum"].attrs["unitDimension"] = np.array([1.0, 0, 0, 0, 0, 0, 0])
fails(["import", "openpmd", bad, "--species", "electrons", *base], "neither a momentum", "wrong unit dimension")
bad = os.path.join(WORK, "bad_rec.h5")
shutil.copy(gb, bad)
with h5py.File(bad, "r+") as h:
    del h["data/5/particles/electrons/weighting"]
fails(["import", "openpmd", bad, "--species", "electrons", *base], "records present: id, mass, momentum", "missing record")
check(not os.path.exists(os.path.join(WORK, "bad.h5")), "no output left behind by failures")

if failures:
    print(f"openpmd tests: {len(failures)} FAILED")
    sys.exit(1)
print("openpmd tests: all passed")
