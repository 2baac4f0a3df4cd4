"""Profiling a step by parts: every part is timed, and the driver's state is untouched."""

import jax
import numpy as np
import optax

import nqs_core
from nqs_core._profile import PARTS, format_profile, profile_step
from nqs_networks import RBM
from nqs_optim import SRt
from nqs_spins import Chain, Ising, MetropolisLocal, SpinHalf


def test_profile_parts_and_unchanged_trajectory():
    space = SpinHalf(n_sites=6)
    driver = nqs_core.VMC(
        Ising(space, Chain(6)),
        RBM(space, alpha=1, key=jax.random.PRNGKey(0)),
        MetropolisLocal(space, n_samples=32, n_chains=4),
        optax.sgd(0.01),
        SRt(diag_shift=1e-3),
    )
    state = driver.init(jax.random.PRNGKey(1))
    reference, _ = driver.step(state)
    prof = profile_step(driver, state, repeats=1)
    assert set(PARTS) <= set(prof["seconds"]) and all(prof["seconds"][p] >= 0 for p in PARTS)
    assert prof["seconds"]["step"] > 0 and prof["matmul_peak"] > 0
    assert prof["flops"]["step"] > 0 and prof["flops"]["log_derivatives"] > 0
    assert "local_energies" in format_profile(prof)
    again, _ = driver.step(state)  # profiling did not change what the step computes
    for a, b in zip(jax.tree.leaves(reference.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(a, b)
