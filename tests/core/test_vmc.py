"""VMC reaches exact ground-state energies on small systems."""

import pytest

import nqs_core
from nqs_spins import exact_energy

COMMON = """
[run]
seed = 3
exact_energy = "none"
n_eval_batches = 20
checkpoint_every = 1000
[sampler]
name = "{sampler}"
n_samples = 512
n_chains = 16
[preconditioner]
name = "sr"
diag_shift = 0.01
[optimizer]
name = "sgd"
learning_rate = 0.05
"""

TFIM8 = """
[lattice]
name = "chain"
length = 8
[space]
name = "spin_half"
[system]
name = "ising"
h = 1.0
[ansatz]
name = "rbm"
alpha = 1
"""

HEIS10 = """
[lattice]
name = "chain"
length = 10
[space]
name = "spin_half"
total_sz = 0.0
[system]
name = "heisenberg"
marshall_sign = true
[ansatz]
name = "rbm"
alpha = 2
"""


@pytest.mark.parametrize(
    "system, sampler, n_steps",
    [(TFIM8, "metropolis_local", 150), (HEIS10, "metropolis_exchange", 200)],
    ids=["tfim_chain_L8", "heisenberg_chain_L10_sz0"],
)
def test_vmc_matches_exact_diagonalisation(tmp_path, system, sampler, n_steps):
    config = nqs_core.loads_config(system + COMMON.format(sampler=sampler))
    config["run"]["n_steps"] = n_steps
    exact = exact_energy(nqs_core.build(config, exact=False, stop_after="system")["system"])
    result = nqs_core.run(config, run_dir=tmp_path, progress=False)
    e, err = float(result.energy.mean.real), float(result.energy.error_of_mean)
    assert abs((e - exact) / exact) < 1e-3
    assert e > exact - 5 * err  # variational, up to statistics
    assert err < 1e-3 * abs(exact)  # the error bar itself resolves the 1e-3 target
