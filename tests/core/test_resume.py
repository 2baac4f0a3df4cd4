"""Checkpoints and resume: 2x steps == x steps + resume for x steps."""

import json

import jax
import numpy as np

import nqs_core
from nqs_core import read_log


def _leaves(state):
    return [np.asarray(a) for a in jax.tree.leaves(state)]


def test_resume_reproduces_uninterrupted_run(tmp_path, small_config):
    full = nqs_core.run(small_config, run_dir=tmp_path / "full", progress=False, n_steps=10)
    part = nqs_core.run(small_config, run_dir=tmp_path / "part", progress=False, n_steps=5)
    assert int(part.state.step) == 5
    resumed = nqs_core.resume(tmp_path / "part", n_steps=10, progress=False)
    assert int(resumed.state.step) == 10
    for a, b in zip(_leaves(full.state), _leaves(resumed.state)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    log_full, log_part = read_log(tmp_path / "full"), read_log(tmp_path / "part")
    assert [r["step"] for r in log_part] == list(range(10))
    np.testing.assert_allclose([r["energy"] for r in log_full], [r["energy"] for r in log_part], rtol=1e-12)
    # the run directory documents itself
    cfg = nqs_core.load_config(tmp_path / "part" / "config.toml")
    assert cfg["run"]["n_steps"] == 10 and cfg["ansatz"]["alpha"] == 1
    result = json.loads((tmp_path / "part" / "result.json").read_text())
    assert result["step"] == 10 and "energy" in result


def test_resume_after_a_crash_mid_run_cuts_the_log(tmp_path, small_config):
    # checkpoint_every = 3: a run killed after step 7 resumes from step 6
    run_dir = tmp_path / "r"
    nqs_core.run(small_config, run_dir=run_dir, progress=False, n_steps=7)
    state_file = run_dir / "checkpoint.json"
    # simulate the crash: the last checkpoint on disk is the periodic one at step 6
    ref = nqs_core.run(small_config, run_dir=tmp_path / "ref", progress=False, n_steps=6)
    for name in ("checkpoint.eqx", "checkpoint.json"):
        (run_dir / name).write_bytes((tmp_path / "ref" / name).read_bytes())
    assert json.loads(state_file.read_text())["step"] == 6
    resumed = nqs_core.resume(run_dir, n_steps=10, progress=False)
    full = nqs_core.run(small_config, run_dir=tmp_path / "full", progress=False, n_steps=10)
    assert [r["step"] for r in read_log(run_dir)] == list(range(10))
    for a, b in zip(_leaves(full.state), _leaves(resumed.state)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ref is not None


def test_checkpoint_has_no_pickle(tmp_path, small_config):
    nqs_core.run(small_config, run_dir=tmp_path, progress=False, n_steps=3)
    raw = (tmp_path / "checkpoint.eqx").read_bytes()
    assert raw.startswith(b"\x93NUMPY")  # a sequence of .npy records
    assert b"cnumpy" not in raw and b"\x80\x04" not in raw[:2]


def test_nan_stop_keeps_last_good_checkpoint(tmp_path, small_config):
    """A run whose energy turns NaN stops, and its checkpoint is not overwritten
    by the broken state."""
    import equinox as eqx
    import jax.numpy as jnp

    from nqs_core import Checkpoint, NaNGuard, build, load_checkpoint

    calc = build(small_config)
    driver = calc.driver
    state = driver.init(jax.random.PRNGKey(0))
    checkpoint, guard = Checkpoint(tmp_path, every=1), NaNGuard()
    state = driver.run(state, 2, [checkpoint, guard])
    good = state
    poisoned = eqx.tree_at(lambda s: s.params, state, jax.tree.map(lambda a: a * jnp.nan, state.params))
    driver.run(poisoned, 6, [checkpoint, guard])
    assert guard.tripped_at == 2
    loaded, meta = load_checkpoint(tmp_path, good)
    assert meta["step"] == 2
    for a, b in zip(_leaves(loaded), _leaves(good)):
        np.testing.assert_array_equal(a, b)


def test_existing_run_directory_is_refused(tmp_path, small_config):
    nqs_core.run(small_config, run_dir=tmp_path, progress=False, n_steps=1)
    import pytest

    with pytest.raises(nqs_core.ConfigError, match="already holds a run"):
        nqs_core.run(small_config, run_dir=tmp_path, progress=False, n_steps=1)


def test_checkpoints_of_earlier_layouts_resume(tmp_path, small_config):
    """A checkpoint written before the guard's blow-up references (nqs 0.2.0) or
    before the guard resumes, and continues the same trajectory as the current
    layout (the references only feed the blow-up test)."""
    import equinox as eqx

    from nqs_core._driver import GuardState
    from nqs_core._io import save_run_state

    full = nqs_core.run(small_config, run_dir=tmp_path / "full", progress=False, n_steps=8)
    for layout in ("before_refs", "before_guard"):
        run_dir = tmp_path / layout
        part = nqs_core.run(small_config, run_dir=run_dir, progress=False, n_steps=4)
        g = part.state.guard
        old_guard = GuardState(g.variance, g.direction_norm, g.count) if layout == "before_refs" else None
        old = eqx.tree_at(lambda s: s.guard, part.state, old_guard, is_leaf=lambda x: x is None)
        assert len(jax.tree.leaves(old)) < len(jax.tree.leaves(part.state))
        save_run_state(run_dir, old)
        resumed = nqs_core.resume(run_dir, n_steps=8, progress=False)
        assert int(resumed.state.step) == 8
        for a, b in zip(_leaves(full.state.params), _leaves(resumed.state.params)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose([r["energy"] for r in read_log(run_dir)], [r["energy"] for r in read_log(tmp_path / "full")], rtol=1e-12)
