"""The natural-gradient memory guard: `AbstractPreconditioner.memory_estimate`
against the memory XLA's compiled step actually needs, and `nqs run` refusing
an absurd size in one line before anything is allocated or written."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import nqs_core
from nqs_networks import RBM
from nqs_optim import SR, SRt
from nqs_spins import Chain, Ising, MetropolisLocal, SpinHalf

L = 12
N_SAMPLES = 256


def _driver(pre, alpha, dtype):
    space = SpinHalf(n_sites=L)
    system = Ising(space=space, lattice=Chain(L), J=1.0, h=1.0)
    model = RBM(space, alpha=alpha, param_dtype=dtype, key=jax.random.PRNGKey(0))
    sampler = MetropolisLocal(space, n_samples=N_SAMPLES, n_chains=8)
    return nqs_core.VMC(system, model, sampler, optax.sgd(0.01), pre), model


def _compiled_temp_bytes(driver):
    """XLA's scratch memory of the driver's jitted step (compiled, not run)."""
    state = driver.init(jax.random.PRNGKey(1))
    dyn, static = eqx.partition(state, eqx.is_array)
    step = driver._step.__wrapped__
    lowered = jax.jit(lambda d, scale: step(eqx.combine(d, static), scale)).lower(dyn, jnp.asarray(1.0))
    return lowered.compile().memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize(
    "pre, alpha, dtype",
    [
        (SR(diag_shift=0.01), 16, "float64"),  # P x P dominates
        (SR(diag_shift=0.01, solver="cg"), 16, "complex128"),  # log-derivatives only
        (SRt(diag_shift=1e-3), 32, "complex128"),  # 2M x 2M sample-space matrix
    ],
    ids=["sr-cholesky-real", "sr-cg-complex", "srt-complex"],
)
def test_estimate_is_close_to_the_compiled_step(pre, alpha, dtype):
    driver, model = _driver(pre, alpha, dtype)
    p = nqs_core.n_real_parameters(model)
    estimate = pre.memory_estimate(N_SAMPLES, p, 16 if dtype == "complex128" else 8)
    temp = _compiled_temp_bytes(driver)
    # never far below what the step needs (the guard must not let an absurd size
    # through), and not so far above that reasonable runs are refused
    assert 0.8 * temp <= estimate <= 2.0 * temp, (estimate, temp)


def test_identity_needs_nothing_extra():
    assert nqs_core.IdentityPreconditioner().memory_estimate(1024, 10**9, 16) == 0.0


def test_the_driver_refuses_a_step_above_the_limit():
    with nqs_core.memory_limit(0.05):  # 50 MB; SR alpha 16 needs about 116 MB
        with pytest.raises(nqs_core.MemoryLimitError, match=r"one SR step \(256 samples x 2508 real parameters\) would need about .* MB, more than the limit of 50 MB"):
            _driver(SR(diag_shift=0.01), 16, "float64")
        _driver(SR(diag_shift=0.01), 2, "float64")  # 12 x 2 hidden units fit


def test_nqs_run_refuses_an_absurd_ansatz_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from nqs_cli import app

    config = tmp_path / "tfim.toml"
    config.write_text(
        '[run]\nn_steps = 2\nexact_energy = "none"\n[lattice]\nname = "chain"\nlength = 20\n'
        '[space]\nname = "spin_half"\n[system]\nname = "ising"\n[ansatz]\nname = "rbm"\nalpha = 100000\n'
        'param_dtype = "float64"\n[sampler]\nname = "metropolis_local"\nn_samples = 2048\nn_chains = 16\n'
        '[preconditioner]\nname = "sr"\n[optimizer]\nname = "sgd"\nlearning_rate = 0.01\n'
    )
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(config), "-q", "-o", str(out)])
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "one SR step (2048 samples x 42000020 real parameters) would need about 28.2 PB" in lines[0], lines
    assert "Traceback" not in r.output and not out.exists()
