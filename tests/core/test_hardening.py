"""Hardening (issue 15): the divergence guard, strict JSON logs, verified
checkpoints, memory guards and the n_samples / n_chains rule."""

import json
import math
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import ConfigError, DivergenceGuard, MemoryLimitError, check_chains, check_memory, read_log
from nqs_core._driver import REJECT_REASONS, GuardState
from nqs_core._io import CheckpointError, json_line, load_checkpoint, save_checkpoint
from nqs_core._stats import Stats


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


# -- requests honoured or refused ---------------------------------------------


@pytest.mark.parametrize(
    "n_samples, n_chains, message",
    [(65, 8, "use n_samples = 64 or 72"), (64, 128, "n_chains = 128 is more than n_samples = 64"), (0, 4, ">= 1"), (1.5, 4, "integer")],
)
def test_check_chains_refuses(n_samples, n_chains, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_chains(n_samples, n_chains)


def test_check_chains_accepts_multiples():
    assert check_chains(64, 8) == (64, 8) and check_chains(np.int64(16), 16) == (16, 16)


def test_samplers_refuse_inexact_requests():
    import nqs_spins

    space = nqs_spins.SpinHalf(4)
    for cls in (nqs_core.ExactSampler, nqs_core.DirectSampler):
        with pytest.raises(ValueError, match="not a multiple"):
            cls(space, n_samples=65, n_chains=8)
    with pytest.raises(ValueError, match="more than n_samples"):
        nqs_core.ExactSampler(space, n_samples=64, n_chains=128)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.learning_rate=-0.1", "learning_rate must be a finite number > 0"),
        ("run.exact_energy=nan", "exact_energy must be a finite number"),
        ("system.h=nan", "field 'h' of system 'ising' must be finite"),
        ("system.h=inf", "must be finite"),
        ("sampler.n_chains=256", "more than n_samples"),  # the exact sampler: core; the Metropolis ones share check_chains
        ("sampler.n_samples=129", "use n_samples = 128 or 136"),
        ("run.divergence_factor=0.5", "divergence_factor must be > 1"),
        ("run.max_memory_gb=-1", "max_memory_gb must be a number of GB > 0"),
    ],
)
def test_config_refuses(small_config, override, message):
    cfg = nqs_core.apply_overrides(small_config, [override, "sampler.name='exact'"] if override.startswith("sampler") else [override])
    with pytest.raises(ConfigError, match=message):
        nqs_core.build(cfg, exact=False)


# -- memory guards -------------------------------------------------------------


def test_check_memory_names_the_numbers():
    assert check_memory(1e6, "x", limit=2e6) == 1e6
    with pytest.raises(MemoryLimitError, match=r"exact thing would need about 5.1 TB, more than the limit of 8 GB"):
        check_memory(5.1e12, "exact thing", limit=8e9)
    with nqs_core.memory_limit(1e-6):  # 1 kB
        with pytest.raises(MemoryLimitError, match="1 kB"):
            check_memory(2e3, "y")


def test_exact_diagonalisation_refuses_40_spins_quickly():
    import nqs_spins

    for n, sz in ((40, None), (40, 0.0), (28, None)):
        system = nqs_spins.Heisenberg(nqs_spins.SpinHalf(n, total_sz=sz), lattice=nqs_spins.Chain(n))
        t0 = time.perf_counter()
        with nqs_core.memory_limit(8.0), pytest.raises(MemoryLimitError, match=r"exact diagonalisation of \d+ states .* would need about"):
            nqs_spins.exact_energy(system)
        assert time.perf_counter() - t0 < 5.0


def test_huge_ansatz_is_refused_before_allocating(small_config):
    cfg = nqs_core.apply_overrides(small_config, ["ansatz.alpha=100000000", "run.max_memory_gb=8"])
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"ansatz's 4.2e\+09 parameters .* would need about 269 GB, more than the limit of 8 GB"):
        nqs_core.build(cfg, exact=False)
    assert time.perf_counter() - t0 < 30.0


# -- the divergence guard (unit) -------------------------------------------------


def _stats(mean=-1.0, variance=1.0, r_hat=1.0):
    f = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    return Stats(f(mean), f(0.01), f(variance), f(0.0), f(r_hat))


def _history(guard, values_var, values_norm):
    state = guard.init()
    for v, d in zip(values_var, values_norm):
        state = guard.update(state, _stats(variance=v), jnp.asarray(d, jnp.float64))
    return state


@pytest.mark.parametrize(
    "stats, norm, direction, params, code",
    [
        (_stats(), 1.0, 1.0, 1.0, 0),
        (_stats(mean=math.nan), 1.0, 1.0, 1.0, 1),
        (_stats(variance=math.inf), 1.0, 1.0, 1.0, 1),
        (_stats(variance=2e5), 1.0, 1.0, 1.0, 2),  # 1e4 x the median 10
        (_stats(variance=9e4), 1.0, 1.0, 1.0, 0),
        (_stats(), 1.0, math.nan, 1.0, 4),
        (_stats(), 1.0, 1.0, math.inf, 5),
        (_stats(), 3e4, 1.0, 1.0, 6),  # 1e4 x the median 2
        (_stats(r_hat=9.0), 1.0, 1.0, 1.0, 0),  # R-hat test off by default
    ],
)
def test_guard_reasons(stats, norm, direction, params, code):
    guard = DivergenceGuard()
    state = _history(guard, [10.0, 5.0, 20.0], [2.0, 1.0, 3.0])
    got = guard.check(state, stats, jnp.asarray(norm, jnp.float64), {"w": jnp.full(3, direction)}, {"w": jnp.full(2, params)})
    assert int(got) == code, REJECT_REASONS.get(int(got))


def test_guard_warmup_and_r_hat():
    guard = DivergenceGuard(max_r_hat=1.5)
    fresh = _history(guard, [1.0], [1.0])  # one accepted step: jump tests not ready
    assert int(guard.check(fresh, _stats(variance=1e9), jnp.asarray(1e9), {}, {})) == 0
    ready = _history(guard, [1.0, 1.0], [1.0, 1.0])
    assert int(guard.check(ready, _stats(r_hat=1.6), jnp.asarray(1.0), {}, {})) == 3
    # the window is a ring: old values leave the median
    ring = _history(DivergenceGuard(window=2), [1e-3, 1e-3, 1.0, 1.0], [1.0] * 4)
    np.testing.assert_array_equal(ring.variance, [1.0, 1.0])
    assert isinstance(ring, GuardState) and int(ring.count) == 4


# -- strict JSON log -------------------------------------------------------------


def _strict_loads(line):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def test_log_lines_are_strict_json(tmp_path):
    record = {"step": 3, "energy": math.nan, "variance": math.inf, "R_hat": 1.0, "rejected": REJECT_REASONS[1]}
    line = json_line(record)
    parsed = _strict_loads(line)
    assert parsed["energy"] is None and parsed["variance"] is None and parsed["non_finite"] == ["energy", "variance"]
    (tmp_path / "log.jsonl").write_text(line + "\n" + json_line({"step": 4, "energy": -1.0}) + "\n{\"step\": 5, \"ener")
    back = read_log(tmp_path)  # the last line, cut off by a kill, is dropped
    assert len(back) == 2 and math.isnan(back[0]["energy"]) and math.isnan(back[0]["variance"]) and back[1]["energy"] == -1.0
    (tmp_path / "log.jsonl").write_text("garbage\n" + json_line({"step": 4, "energy": -1.0}) + "\n")
    with pytest.raises(ValueError, match="line 1 is not a JSON record"):
        read_log(tmp_path)


# -- verified checkpoints --------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    state = nqs_core.VMCState(
        params={"w": jnp.arange(64.0)}, opt_state=(), sampler_state={"k": jnp.zeros(2, jnp.uint32)},
        precond_state=None, step=jnp.asarray(7, jnp.int64), guard=DivergenceGuard().init(),
    )
    save_checkpoint(tmp_path, state, {"step": 7, "n_ranks": 1})
    return tmp_path, state


def test_checkpoint_roundtrip_and_mode(saved):
    run_dir, state = saved
    loaded, meta = load_checkpoint(run_dir, state)
    assert meta["step"] == 7 and len(meta["sha256"]) == 64
    for a, b in zip(_leaves(loaded), _leaves(state)):
        np.testing.assert_array_equal(a, b)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("checkpoint.eqx", "checkpoint.json"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_flipped_checkpoint_bytes_are_detected(saved):
    run_dir, state = saved
    path = run_dir / "checkpoint.eqx"
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.choice(len(data), size=5, replace=False):
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match="is damaged"):
            load_checkpoint(run_dir, state)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(run_dir, state)


def test_checkpoint_meta_must_match(saved):
    run_dir, state = saved
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    (run_dir / "checkpoint.json").write_text(json.dumps({**meta, "step": 57}))
    with pytest.raises(CheckpointError, match="says step 57 but the checkpoint .* holds step 7"):
        load_checkpoint(run_dir, state)
    (run_dir / "checkpoint.json").write_text("{")
    with pytest.raises(CheckpointError, match="missing or damaged"):
        load_checkpoint(run_dir, state)
    (run_dir / "checkpoint.json").write_text(json.dumps(meta))
    other = eqx.tree_at(lambda s: s.params, state, {"w": jnp.arange(65.0)})
    with pytest.raises(CheckpointError, match="does not fit this run's configuration"):
        load_checkpoint(run_dir, other)


def test_a_crash_during_a_write_keeps_the_old_file(tmp_path):
    from nqs_core._io import atomic_write

    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def crash(f):
        f.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


# -- divergence in a run -----------------------------------------------------------


def _run(config, run_dir, overrides):
    return nqs_core.run(nqs_core.apply_overrides(config, overrides), run_dir=run_dir, progress=False)


def _params_after(config, overrides, n_steps):
    """Parameters of an undisturbed driver after `n_steps` steps (same seed as `run`)."""
    calc = nqs_core.build(nqs_core.apply_overrides(config, overrides), exact=False)
    state = calc.driver.init(jax.random.fold_in(jax.random.PRNGKey(calc.run["seed"]), 1000))
    for _ in range(n_steps):
        state, record = calc.driver.step(state)
        assert "rejected" not in record
    return state.params


def test_huge_learning_rate_stops_with_the_last_good_state(tmp_path, small_config):
    """lr = 1e6: the energy after the first update is NaN; the update is redone
    3 times with half the step each, then the run stops. The checkpoint holds
    step 0 (the initial parameters), the log is strict JSON, and a resume with
    a sane learning rate continues from there."""
    run_dir = tmp_path / "run"
    result = _run(small_config, run_dir, ["optimizer.learning_rate=1e6", "run.checkpoint_every=1"])
    assert result.stopped_early and "step 1: the energy or its variance is not finite (after 3 retries)" in result.stop_reason
    assert json.loads((run_dir / "result.json").read_text())["stop_reason"] == result.stop_reason
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    records = [_strict_loads(line) for line in lines]
    assert [r["step"] for r in records] == [0, 1] * 4
    assert [r.get("update_scale", 1.0) for r in records[::2]] == [1.0, 0.5, 0.25, 0.125]
    assert records[-1]["diverged"] == result.stop_reason and records[-1]["energy"] is None
    loaded, meta = load_checkpoint(run_dir, result.state)
    assert meta["step"] == 0
    for a, b in zip(_leaves(loaded.params), _leaves(_params_after(small_config, [], 0))):
        np.testing.assert_array_equal(a, b)
    resumed = nqs_core.resume(run_dir, progress=False, overrides=["optimizer.learning_rate=0.05", "run.n_steps=3"])
    assert not resumed.stopped_early and int(resumed.state.step) == 3 and math.isfinite(float(resumed.energy.mean.real))
    log = read_log(run_dir, events=True)
    assert log[0] == {"step": 0, "event": "resume", "set": {"optimizer.learning_rate": "0.05", "run.n_steps": "3"}}
    assert [r["step"] for r in log[1:]] == [0, 1, 2]
    for a, b in zip(_leaves(resumed.state.params), _leaves(_params_after(small_config, [], 3))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)  # the run a sane learning rate would have given


def test_finite_divergence_stops_with_the_last_good_state(tmp_path, small_config):
    """Plain gradient descent with lr = 5 on the real RBM: the energy variance
    goes 4.8, 2.1, then 3.4e7 at step 2 (energy -1.5e3) while every number
    stays finite. The
    default divergence_factor (1e4 over the running median) rejects step 2;
    with no retries the run stops there and the checkpoint holds step 1."""
    overrides = ["ansatz.param_dtype='float64'", "preconditioner.name='identity'", "optimizer.momentum=0.0"]
    cfg = nqs_core.apply_overrides(small_config, overrides)
    del cfg["preconditioner"]["diag_shift"]
    run_dir = tmp_path / "run"
    result = _run(cfg, run_dir, ["optimizer.learning_rate=5.0", "run.max_retries=0", "run.checkpoint_every=1"])
    assert result.stopped_early and result.stop_reason.startswith("step 2: the energy variance jumped")
    records = read_log(run_dir)
    assert [r["step"] for r in records] == [0, 1, 2] and records[-1]["rejected"] == REJECT_REASONS[2]
    assert all(math.isfinite(r["energy"]) for r in records) and records[-1]["variance"] > 1e4 * records[1]["variance"]
    loaded, meta = load_checkpoint(run_dir, result.state)
    assert meta["step"] == 1
    for a, b in zip(_leaves(loaded.params), _leaves(_params_after(cfg, ["optimizer.learning_rate=5.0"], 1))):
        np.testing.assert_array_equal(a, b)
    # the step-1 parameters of lr = 5 have collapsed the sampling (one or two
    # distinct configurations, the chains hardly move, on a state that is not an
    # eigenstate): since issue 27 a resume stops there by default; "warn" continues, flagged
    stopped = nqs_core.resume(run_dir, progress=False, overrides=["optimizer.learning_rate=0.05", "run.n_steps=4"])
    assert stopped.stopped_early
    assert "the samples collapsed" in stopped.stop_reason or "the sampling froze" in stopped.stop_reason
    resumed = nqs_core.resume(
        run_dir, progress=False, overrides=["optimizer.learning_rate=0.05", "run.n_steps=4", "run.on_unhealthy='warn'"]
    )
    assert not resumed.stopped_early and int(resumed.state.step) == 4
    assert [r["step"] for r in read_log(run_dir)] == [0, 1, 2, 3]
    assert any("unhealthy" in r for r in read_log(run_dir))


def test_healthy_run_is_not_touched(tmp_path, small_config):
    """The default guard rejects nothing in the small TFIM run, and a run without
    a guard gives the same trajectory bit for bit."""
    result = _run(small_config, tmp_path / "a", ["run.n_steps=6"])
    records = read_log(tmp_path / "a")
    assert not result.stopped_early and [r["step"] for r in records] == list(range(6))
    assert not any("rejected" in r or "update_scale" in r for r in records)
    off = _run(small_config, tmp_path / "b", ["run.n_steps=6", "run.divergence_factor=inf"])
    for a, b in zip(_leaves(result.state.params), _leaves(off.state.params)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_resume_rules(tmp_path, small_config):
    """A run killed before its first checkpoint restarts from step 0 with
    `resume`; `--set` of a field that is not a stage field, or a bad step count,
    is refused with the run directory untouched."""
    run_dir = tmp_path / "run"
    result = _run(small_config, run_dir, ["run.n_steps=2"])
    reference = _leaves(result.state.params)
    for name in ("checkpoint.eqx", "checkpoint.json", "log.jsonl", "result.json"):
        (run_dir / name).unlink()
    before = (run_dir / "config.toml").read_text()
    with pytest.raises(ConfigError, match="only these fields may change"):
        nqs_core.resume(run_dir, progress=False, overrides=["ansatz.alpha=2"])
    with pytest.raises(ConfigError, match="n_steps must be an integer >= 0, got -5"):
        nqs_core.resume(run_dir, n_steps=-5, progress=False)
    assert (run_dir / "config.toml").read_text() == before and sorted(p.name for p in run_dir.iterdir()) == ["config.toml"]
    again = nqs_core.resume(run_dir, progress=False)
    for a, b in zip(_leaves(again.state.params), reference):
        np.testing.assert_array_equal(a, b)


def test_progress_shows_a_rejected_step_as_rejected():
    # a rejected attempt is always printed, as rejected and without its energy (it is no result)
    import io
    import types

    from rich.console import Console

    from nqs_core import ProgressBar

    buf = io.StringIO()
    bar = ProgressBar(console=Console(file=buf, width=200), every=100, plain=True)
    driver = types.SimpleNamespace(exact_energy=None, objective="energy", label="VMC")
    state = types.SimpleNamespace(step=jnp.asarray(8))
    bar.on_start(driver, state, 12)
    rejected = {"step": 9, "energy": 1720.9, "energy_error": 616.8, "variance": 8e8, "rejected": REJECT_REASONS[2], "attempt": 2}
    bar(driver, state, rejected)
    retry = {"step": 8, "energy": 3.5, "energy_error": 2.1, "variance": 3e4, "update_scale": 0.25}
    bar(driver, types.SimpleNamespace(step=jnp.asarray(12)), retry)
    lines = buf.getvalue().splitlines()
    assert lines[0] == f"step 10/12 rejected (attempt 2): {REJECT_REASONS[2]}; retrying"
    assert "1720" not in lines[0]
    assert lines[1].startswith("step 12/12  E = 3.5 ± 2.1") and lines[1].endswith("(retry: update x 0.25)")
    bar(driver, state, {**rejected, "diverged": "step 9: ..."})
    assert buf.getvalue().splitlines()[2].endswith("; the run stops")
