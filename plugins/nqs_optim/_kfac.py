"""KFAC (Martens & Grosse 2015) as an nqs preconditioner, built on kfac-jax's curvature estimator."""

from __future__ import annotations

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp

from nqs_core import AbstractPreconditioner, parameters

ESTIMATION_MODES = ("fisher_exact", "fisher_gradients")


def _kfac_jax():
    """kfac-jax, imported when a KFAC preconditioner is used (a missing or broken
    kfac-jax leaves the other preconditioners and optimizers working)."""
    try:
        import kfac_jax
    except Exception as exc:  # ImportError, or a kfac-jax that fails against this jax
        raise ImportError(f"the kfac preconditioner needs kfac-jax (pip install kfac-jax): {exc}") from None
    return kfac_jax


@contextlib.contextmanager
def compatible_kfac_jax():
    """A context in which kfac-jax works with this jax.

    kfac-jax 0.0.8 unpacks `Primitive.get_bind_params` as `(subfuns, params)`;
    jax >= 0.9 returns only the params, which breaks kfac-jax's jaxpr
    interpreter. While KFAC traces its curvature (inside this context only),
    use a version of that one function that accepts both; restored on exit."""
    import jax.extend

    _kfac_jax()  # one line naming the package when it is missing
    from kfac_jax._src import tag_graph_matcher as tgm

    original = tgm.eval_jaxpr_eqn

    def eval_jaxpr_eqn(eqn, in_values):
        bind = eqn.primitive.get_bind_params(eqn.params)
        subfuns, params = bind if isinstance(bind, tuple) else ((), bind)
        with jax.extend.source_info_util.user_context(eqn.source_info.traceback):
            output = eqn.primitive.bind(*subfuns, *in_values, **params)
        return output if isinstance(output, list) else [output]

    tgm.eval_jaxpr_eqn = eval_jaxpr_eqn
    try:
        yield
    finally:
        tgm.eval_jaxpr_eqn = original


def _split(tree):
    """Complex leaves -> `(re, im)` pairs, so kfac-jax only sees real parameters."""
    return jax.tree.map(lambda a: (jnp.real(a), jnp.imag(a)) if jnp.iscomplexobj(a) else a, tree)


def _merge(split, like):
    """Inverse of `_split` (pairs -> `re + 1j im`), guided by the original tree `like`."""
    leaves, treedef = jax.tree.flatten(like)
    flat = jax.tree.leaves(split)
    out, i = [], 0
    for a in leaves:
        if jnp.iscomplexobj(a):
            out.append(jax.lax.complex(flat[i], flat[i + 1]).astype(a.dtype))
            i += 2
        else:
            out.append(flat[i].astype(a.dtype))
            i += 1
    return jax.tree.unflatten(treedef, out)


class KFAC(AbstractPreconditioner):
    """Kronecker-factored approximate curvature (KFAC) preconditioner, with kfac-jax.

    The curvature is the (uncentred) Fisher of the wave function,
    `F = E[O O^T]`, `O = d log psi / d theta`, as in FermiNet: `log psi` of the
    batch is registered as the mean of a unit-variance normal predictive
    distribution (`kfac_jax.register_normal_predictive_distribution`; real and
    imaginary part for complex `log psi`), kfac-jax tags the layers of the
    ansatz automatically and builds one block per layer: Kronecker-factored
    `A (x) G` for dense layers it recognises (`x @ W` with `W` stored as
    `(in, out)`, also repeated over particles), scale-and-shift blocks for
    biases and diagonal ("generic") blocks for every other parameter. The
    direction is `(F_KFAC + damping)^{-1} grad E` (same normalisation as SR),
    handed to the optax optimizer.

    Note: `EquivariantSlater` stores its layer weights `(in, out)` and gets
    Kronecker blocks. equinox's `eqx.nn.Linear` and the nqs MLP store `W` as
    `(out, in)` and compute `W @ x`, which kfac-jax's graph matcher does not
    recognise: those weights get diagonal blocks. Register such layers by hand
    with `kfac_jax.register_dense(y, x, w_in_out, b)` in the network code to
    get Kronecker blocks. A block whose curvature factor vanishes (0/0 inside
    kfac-jax) gets its exact damped inverse, `grad / damping`.

    **Arguments:**

    - `damping`: `lambda`, added to the curvature before inversion.
    - `ema`: exponential moving average of the curvature across steps (0: use
      only the current samples; FermiNet uses 0.95).
    - `exact_inverse`: invert each Kronecker block exactly through the
      eigendecompositions of its factors, `(A (x) G + lambda)^{-1}` (default);
      `False` uses the factored (pi-)damping of the KFAC paper.
    - `estimation_mode`: `"fisher_exact"` (default, deterministic) or
      `"fisher_gradients"` (sampled targets, as in the KFAC paper).
    """

    damping: float = 1e-3
    ema: float = 0.0
    exact_inverse: bool = eqx.field(default=True, static=True)
    estimation_mode: str = eqx.field(default="fisher_exact", static=True)

    def __check_init__(self):
        if self.damping <= 0:
            raise ValueError(f"damping must be > 0, got {self.damping}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.estimation_mode not in ESTIMATION_MODES:
            raise ValueError(f"unknown estimation_mode {self.estimation_mode!r}; valid: {', '.join(ESTIMATION_MODES)}")

    def init(self, ansatz, samples):
        """The kfac-jax curvature state for the blocks of `ansatz` on a batch
        shaped like `samples` (built here so that checkpoints match the
        template), and a step counter."""
        xs = samples.reshape((-1,) + samples.shape[2:])
        return _kfac_init(self, ansatz, xs)

    def curvature(self, ansatz, xs):
        """`(estimator, func_args)`: the kfac-jax curvature estimator for `ansatz` on the batch `xs`."""
        kfac_jax = _kfac_jax()
        params, static = parameters(ansatz)

        def func(split_params, batch):
            model = eqx.combine(_merge(split_params, params), static)
            out = jax.vmap(model)(batch)
            if jnp.iscomplexobj(out):
                mean = jnp.stack([jnp.real(out), jnp.imag(out)], axis=1)
            else:
                mean = out[:, None]
            # unit variance: the curvature is E[O O^T] (kfac-jax defaults to variance 1/2, i.e. 2x)
            kfac_jax.register_normal_predictive_distribution(mean, variance=1.0)
            return jnp.mean(jnp.real(out))

        estimator = kfac_jax.curvature_estimator.BlockDiagonalCurvature(func, default_estimation_mode=self.estimation_mode)
        return estimator, (_split(params), xs)

    def _powers(self):
        return (-1, None) if self.exact_inverse else (None, -1)

    def __call__(self, context, state):
        ansatz = context.ansatz
        grad = context.gradient()
        xs = context.flat_samples
        with compatible_kfac_jax():
            curv, func_args = self.curvature(ansatz, xs)
            power, approx = self._powers()
            kstate, count = state
            ema_old = jnp.where(count > 0, self.ema, 0.0)
            kstate = curv.update_curvature_matrix_estimate(
                kstate, ema_old, 1.0 - ema_old, self.damping, xs.shape[0],
                jax.random.fold_in(jax.random.PRNGKey(0), count), func_args,
            )
            kstate = curv.update_cache(
                kstate, self.damping, exact_powers=power, approx_powers=approx, eigenvalues=False, pmap_axis_name=None
            )
            params, _ = parameters(ansatz)
            direction = curv.multiply_inverse(
                kstate, _split(grad), self.damping, exact_power=self.exact_inverse, use_cached=True, pmap_axis_name=None
            )
        # a block whose output-side factor G vanishes (e.g. layers feeding a
        # read-out that starts at zero, EquivariantSlater init="ho") gives 0/0 in
        # kfac-jax's factor scaling; its exact damped inverse is grad / damping
        direction = jax.tree.map(
            lambda d, g: jnp.where(jnp.isfinite(d), d, g / self.damping), direction, _split(grad)
        )
        return _merge(direction, params), (kstate, count + 1), {}


@eqx.filter_jit
def _kfac_init(kfac, ansatz, xs):
    with compatible_kfac_jax():
        curv, func_args = kfac.curvature(ansatz, xs)
        power, approx = kfac._powers()
        kstate = curv.init(jax.random.PRNGKey(0), func_args, exact_powers_to_cache=power, approx_powers_to_cache=approx)
    return kstate, jnp.zeros((), jnp.int32)
