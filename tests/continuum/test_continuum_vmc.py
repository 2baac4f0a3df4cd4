"""End to end: VMC of two interacting fermions from a config, against the grid solver."""

import jax

import nqs_core
from nqs_continuum import grid_energy_two_body

CONFIG = {
    "run": {"n_steps": 80, "seed": 3, "exact_energy": "auto"},
    "space": {"name": "particles_1d", "n_particles": 2},
    "system": {"name": "trapped_fermions_1d", "V0": -10.0, "sigma0": 0.5},
    "ansatz": {"name": "equivariant_slater", "hidden": 8, "n_layers": 2},
    "sampler": {"name": "gaussian_metropolis", "n_samples": 512, "n_chains": 32},
    "preconditioner": {"name": "sr", "diag_shift": 1e-3},
    "optimizer": {"name": "sgd", "learning_rate": 0.05},
}


def test_config_builds_and_finds_the_exact_reference():
    calc = nqs_core.build(CONFIG)
    nqs_core.resolve_exact_energy(calc)
    assert abs(calc.config["run"]["exact_energy"] - 0.595906) < 1e-6


def test_vmc_reaches_grid_energy_a2_attractive():
    """A = 2, V0 = -10 (Drissi et al. 2024's optimiser benchmark): 80 SR steps of 512 samples
    reach the grid energy 0.595906 within 1e-3 relative (full runs: examples/continuum)."""
    exact = grid_energy_two_body(-10.0, 0.5)
    calc = nqs_core.build(CONFIG)
    driver = calc.driver
    state = driver.init(jax.random.PRNGKey(CONFIG["run"]["seed"]))
    state = driver.run(state, CONFIG["run"]["n_steps"])
    stats, _ = driver.evaluate(state, n_batches=32)  # 16384 samples: an error bar near 2.2e-4
    print(stats)
    energy, err = float(stats.mean), float(stats.error_of_mean)
    assert err < 2.5e-4
    assert abs(energy - exact) / abs(exact) < 1e-3, (energy, err)
    assert energy - exact > -5 * err  # variational, up to noise
    assert float(stats.variance) < 5e-3
