"""NetKet's side of `benchmarks/tdvp_step.py`: one RK4 step of `netket.experimental.TDVP`.

Run with the NetKet virtual environment's python (started by `tdvp_step.py`):

    /work/bench-venvs/netket/bin/python benchmarks/peers/tdvp_netket.py PROBLEM.json

The problem: TFIM chain `H = -J sum Z_i Z_{i+1} - h sum X_i` (periodic; NetKet's
`Ising` is `-h sum X + J sum ZZ`, so its `J` is `-J`), `nk.models.RBM` with complex
parameters, no visible bias, the shared initial parameters; `MetropolisLocal`
(`n_chains` chains, `sweep_size` flips between samples, `n_discard` sweeps
discarded at every call), `MCState.reset()` at every Runge-Kutta stage (what
NetKet's TDVP does), so every stage draws fresh samples. The QGT is
`QGTJacobianDense` (holomorphic for the holomorphic RBM unless the problem says
otherwise) with the problem's diagonal shift, solved by `cholesky`, or
`pinv_smooth` with the problem's `rcond`; the integrator `nkx.dynamics.RK4(dt)`;
one timed step is `driver.run(dt, out=(), show_progress=False)`.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _protocol import read_problem, serve, setup_env  # noqa: E402

setup_env()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import netket as nk  # noqa: E402
import netket.experimental as nkx  # noqa: E402
import numpy as np  # noqa: E402


def main():
    pb, arr = read_problem()
    L = pb["L"]
    hi = nk.hilbert.Spin(0.5, N=L)
    graph = nk.graph.Chain(L, pbc=True)
    ham = nk.operator.Ising(hi, graph, h=pb["h"], J=-pb["J"])
    model = nk.models.RBM(alpha=pb["alpha"], param_dtype=complex, use_visible_bias=False)
    sampler = nk.sampler.MetropolisLocal(hi, n_chains=pb["n_chains"], sweep_size=pb["sweep_size"])
    vs = nk.vqs.MCState(
        sampler, model, n_samples=pb["n_samples"], n_discard_per_chain=pb["n_discard"], seed=pb["seed"], sampler_seed=pb["seed"] + 1
    )
    w, b = arr["W"], arr["b"]  # (n_hidden, L), (n_hidden,)
    vs.parameters = {"Dense": {"kernel": jnp.asarray(w.T), "bias": jnp.asarray(b)}}
    xs = jnp.asarray(arr["check_x"], dtype=jnp.float64)
    log_psi = np.asarray(vs.log_value(xs))
    xp, mels = ham.get_conn_padded(xs)
    lxp = vs.log_value(xp.reshape(-1, L)).reshape(mels.shape)
    eloc = np.asarray(jnp.sum(mels * jnp.exp(lxp - log_psi[:, None]), axis=1))

    sol = pb["solver"]
    holo = sol.get("holomorphic", True)
    if sol["kind"] == "cholesky":
        qgt = nk.optimizer.qgt.QGTJacobianDense(holomorphic=holo, diag_shift=sol["diag_shift"])
        linear_solver = nk.optimizer.solver.cholesky
    elif sol["kind"] == "pinv":
        from functools import partial

        qgt = nk.optimizer.qgt.QGTJacobianDense(holomorphic=holo, diag_shift=sol.get("diag_shift", 0.0))
        linear_solver = partial(nk.optimizer.solver.pinv_smooth, rtol=sol["rcond"], rtol_smooth=sol["rcond"])
    else:
        raise SystemExit(f"unknown solver {sol!r}")
    driver = nkx.TDVP(ham, vs, nkx.dynamics.RK4(dt=pb["dt"]), qgt=qgt, linear_solver=linear_solver)

    def step():
        logger = nk.logging.RuntimeLog()  # in memory: the energy at the first stage
        driver.run(pb["dt"], out=logger, show_progress=False)
        jax.block_until_ready(vs.parameters)
        stats = logger.data["Generator"]
        return {"t": float(driver.t), "energy": float(np.real(stats["Mean"][0])), "energy_error": float(stats["Sigma"][0])}

    for _ in range(pb["warmup"]):
        step()

    def final():
        e = vs.expect(ham)
        return {"energy": float(np.real(e.mean)), "energy_error": float(e.error_of_mean), "t": float(driver.t)}

    serve(
        step,
        final,
        {
            "library": "netket",
            "versions": {"netket": nk.__version__, "jax": jax.__version__, "numpy": np.__version__},
            "n_real_params": 2 * int(vs.n_parameters),
            "check": {
                "log_psi_re": np.real(log_psi).tolist(),
                "log_psi_im": np.imag(log_psi).tolist(),
                "eloc_re": np.real(eloc).tolist(),
                "eloc_im": np.imag(eloc).tolist(),
            },
            "setup": f"QGTJacobianDense(holomorphic={holo}) + {sol}, RK4, MetropolisLocal",
        },
    )


if __name__ == "__main__":
    main()
