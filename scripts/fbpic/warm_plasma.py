"""A small fbpic run for colop: a uniform warm electron plasma over an immobile-ish proton
background, periodic in z, with a low-density test species of electrons drifting along x.
fbpic writes file-based openPMD HDF5 (diags/hdf5/data%08T.h5). Usage: warm_plasma.py STEPS PERIOD"""
import sys

import numpy as np
from fbpic.main import Simulation
from fbpic.openpmd_diag import ParticleDiagnostic
from scipy.constants import c, e, m_e, m_p

steps, period = int(sys.argv[1]), int(sys.argv[2])
n_e = 1.0e24                                   # m⁻³, ω_pe = 5.64e13 rad/s
v_th = 0.05                                    # c
omega_p = np.sqrt(n_e * e**2 / (8.8541878128e-12 * m_e))
lambda_d = v_th * c / omega_p
Nz, Nr, Nm = 32, 16, 2
dz = 1.0 * lambda_d
zmax, rmax = Nz * dz, Nr * dz
dt = dz / c
sim = Simulation(Nz, zmax, Nr, rmax, Nm, dt, zmin=0.0, n_order=-1, use_cuda=False,
                 boundaries={"z": "periodic", "r": "reflective"}, initialize_ions=False, verbose_level=0)
ppc = dict(p_nz=2, p_nr=2, p_nt=4, p_zmin=0.0, p_zmax=zmax, p_rmin=0.0, p_rmax=rmax)
th = dict(ux_th=v_th, uy_th=v_th, uz_th=v_th)
electrons = sim.add_new_species(q=-e, m=m_e, n=n_e, **ppc, **th)
sim.add_new_species(q=e, m=m_p, n=n_e, **ppc)
test = sim.add_new_species(q=-e, m=m_e, n=1e-3 * n_e, ux_m=3 * v_th, **ppc, **th)
test.track(sim.comm)
sim.diags = [ParticleDiagnostic(period, {"electrons": electrons, "test": test}, comm=sim.comm,
                                particle_data=["momentum", "weighting"], write_dir="diags")]
print(f"omega_p = {omega_p:.6e} rad/s, omega_p dt = {omega_p * dt:.4f}, "
      f"{sum(s.Ntot for s in sim.ptcl)} particles", flush=True)
sim.step(steps)
