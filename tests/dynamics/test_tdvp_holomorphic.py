"""The complex form of the TDVP equation for a holomorphic ansatz (the RBM
with complex parameters): `[driver] holomorphic = true` (the default) solves
the `P/2 x P/2` complex equation, `false` the `P x P` real one; the two give
the same trajectory, the same residuals and step sizes, up to rounding."""

import numpy as np
import pytest

import nqs_core
from nqs_core import ConfigError, read_log


def _config(**driver):
    n = 5
    return {
        "run": {"seed": 3, "n_eval_batches": 1, "exact_check": "off"},
        "lattice": {"name": "chain", "length": n, "pbc": True},
        "space": {"name": "spin_half"},
        "system": {"name": "ising", "h": 1.0},
        "ansatz": {"name": "rbm", "alpha": 2, "param_dtype": "complex128", "init_std": 0.2},
        "sampler": {"name": "full_sum"},
        "driver": {"name": "tdvp", "time": "real", "t_end": 0.2, "t_out": 0.1, **driver},
        "observables": {"x": {"name": "operator", "terms": [{"op": "Sx", "sites": "all", "coupling": 2.0 / n}]}},
    }


@pytest.mark.parametrize(
    "integrator, solver",
    [
        ({"name": "rk4", "dt": 0.02}, {"name": "sr", "diag_shift": 1e-4}),
        ({"name": "rk23", "dt": 1e-3, "rtol": 1e-5, "atol": 1e-7}, {"name": "sr", "diag_shift": 0.0, "rcond": 1e-6, "snr_cutoff": 0.5}),
    ],
    ids=["rk4-cholesky", "rk23-rcond-snr"],
)
def test_the_complex_and_real_forms_give_the_same_trajectory(tmp_path, integrator, solver):
    runs, logs = {}, {}
    for holo in (True, False):
        cfg = _config(integrator=integrator, solver=solver, holomorphic=holo)
        assert nqs_core.build(cfg).driver.holomorphic is holo
        runs[holo] = nqs_core.run(cfg, run_dir=tmp_path / str(holo), progress=False)
        logs[holo] = read_log(tmp_path / str(holo))
    a, b = (nqs_core.real_ravel(runs[h].state.params)[0] for h in (True, False))
    assert np.max(np.abs(a - b)) < 1e-9 * np.max(np.abs(b))
    assert len(logs[True]) == len(logs[False]) == 3
    for key in ("residual", "effective_rank", "n_substeps", "dt"):
        got = np.array([r.get(key, np.nan) for r in logs[True]], dtype=float)
        want = np.array([r.get(key, np.nan) for r in logs[False]], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12, err_msg=key)
    x = [np.array([r["observables"]["x"]["mean"] for r in logs[h]]) for h in (True, False)]
    np.testing.assert_allclose(x[0], x[1], atol=1e-10)


def test_holomorphic_must_be_a_boolean(tmp_path):
    with pytest.raises(ConfigError, match="field 'holomorphic' of driver 'tdvp' must be bool"):
        nqs_core.build(_config(holomorphic="yes"))


def test_a_real_ansatz_uses_the_real_form():
    cfg = _config(time="imaginary")
    cfg["ansatz"]["param_dtype"] = "float64"
    assert nqs_core.build(cfg).driver.holomorphic is False
