"""One Metropolis-Hastings engine with pluggable transition rules.

`MetropolisSampler` runs the chains (state, thermalisation, discarded and
stored sweeps, acceptance counts, width adaptation); an
`AbstractMetropolisRule` says how one chain moves. The composition follows
NetKet's `MetropolisSampler` + `MetropolisRule` (Carleo et al. 2019,
NetKet: A machine learning toolkit for many-body quantum systems). Plugins
add rules (single spin flips, exchanges, Gaussian moves, phi^4 checkerboard
updates) and, when a registered name with its own TOML fields is wanted, a
thin final sampler class over `AbstractMetropolisSampler`.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, Scalar

from ._sampler import AbstractDistribution, AbstractSampler, legacy_key, metropolis_steps
from ._space import AbstractSpace
from ._validate import check_chains, check_int


class MetropolisState(eqx.Module):
    """State of every Metropolis sampler, carried between `sample` calls.

    **Fields:**

    - `x`: current configurations of the chains, `(n_chains, *shape)`.
    - `log_prob`: cached `log p(x)` of each chain, `(n_chains,)`.
    - `key`: PRNG key, a legacy `uint32` array of shape `(2,)` (saves to npz).
    - `rule_state`: what the rule adapts (a proposal width) or `None`.
    - `n_accepted`: accepted proposals per chain since `init`, `(n_chains,)` int64.
    - `n_steps`: steps per chain since `init` (thermalisation not counted), int64
      scalar; `0` marks fresh chains.
    """

    x: Array
    log_prob: Array
    key: Array
    rule_state: Any
    n_accepted: Array
    n_steps: Array

    @property
    def acceptance(self) -> Array:
        """Fraction of steps accepted since `init`, over all chains (for rules
        with several proposals per step, accepted proposals per step)."""
        return jnp.sum(self.n_accepted) / jnp.maximum(self.n_steps * self.n_accepted.shape[0], 1)


class AbstractMetropolisRule(eqx.Module):
    """How the chains move: `n` transition steps of all chains at once.

    A rule implements `transition` (proposals and the accept test, vectorised
    over chains), `init_state` / `adapt` for what it tunes (a width; `None`
    when nothing), `info` for the diagnostics it reports and
    `proposals_per_step`, which normalises the acceptance. Rules with
    symmetric proposals on the whole configuration derive from
    `AbstractSymmetricRule` and only say how to draw and apply a move.
    """

    @abc.abstractmethod
    def init_state(self, distribution: AbstractDistribution, x: Array) -> Any:
        """Initial rule state for chains `x`; raises `TypeError` for a
        distribution the rule cannot move on."""
        raise NotImplementedError

    @abc.abstractmethod
    def transition(
        self, distribution: AbstractDistribution, x: Array, log_prob: Array, rule_state: Any, key: PRNGKeyArray, n: int
    ) -> tuple[Array, Array, Array]:
        """`n` steps of every chain: `(x, log_prob, n_accepted)` with the
        accepted proposals per chain (int64)."""
        raise NotImplementedError

    def draw(self, key: PRNGKeyArray, n_sweeps: int, n: int, x: Array, rule_state: Any) -> Any:
        """The random numbers of `n_sweeps` sweeps of `n` steps each, drawn at
        once (one vectorised draw costs far less than one per sweep): a pytree
        whose leaves have the leading axis `n_sweeps`. The engine hands slice
        `i` to `sweep`. `x` and `rule_state` are those at the start of the
        block, for shapes and dtypes: what is drawn must not depend on their
        values. Default: one key per sweep, and `sweep` calls `transition`."""
        return jax.random.split(key, n_sweeps)

    def sweep(self, distribution: AbstractDistribution, x: Array, log_prob: Array, rule_state: Any, randoms: Any, n: int) -> tuple[Array, Array, Array]:
        """`n` steps of every chain with one sweep's slice of `draw`, returning
        what `transition` returns. Default: `transition` with the key `draw` gave."""
        return self.transition(distribution, x, log_prob, rule_state, randoms, n)

    @abc.abstractmethod
    def adapt(self, rule_state: Any, acceptance: Scalar) -> Any:
        """New rule state after a sweep with this acceptance (during
        thermalisation and discarded sweeps only)."""
        raise NotImplementedError

    @abc.abstractmethod
    def info(self, rule_state: Any) -> dict[str, Array]:
        """Diagnostics added to the sampler's `info` (e.g. the width)."""
        raise NotImplementedError

    @abc.abstractmethod
    def proposals_per_step(self, x: Array) -> int:
        """Proposals per chain in one step (1 for a move of the whole
        configuration, the number of sites for a site-by-site sweep)."""
        raise NotImplementedError


class AbstractProposalRule(AbstractMetropolisRule):
    """Metropolis-Hastings with a proposal `q(x'|x)` of the whole configuration,
    accepted with probability `min(1, p(x') q(x|x') / (p(x) q(x'|x)))`
    (Hastings 1970, Monte Carlo sampling methods using Markov chains and their
    applications, Biometrika 57, 97, Eq. 2.1). Subclasses draw the random
    moves, apply them and give `log q(x|x') - log q(x'|x)`; symmetric
    proposals derive from `AbstractSymmetricRule`, where that ratio is 0.
    Under parallel tempering `p` is tempered, `q` is not."""

    @abc.abstractmethod
    def moves(self, key: PRNGKeyArray, shape: tuple[int, int], x: Array, rule_state: Any):
        """Random parameters of `shape = (n, n_chains)` proposals (a pytree of
        arrays with these leading dimensions). `x` and `rule_state` give shapes
        and dtypes only: the moves of many sweeps are drawn at once, before the
        chains reach them, so they must not depend on the values (scale a move
        by the width in `propose`)."""
        raise NotImplementedError

    @abc.abstractmethod
    def propose(self, x: Array, move, rule_state: Any) -> Array:
        """Apply one move per chain: `x` is `(n_chains, *shape)`."""
        raise NotImplementedError

    @abc.abstractmethod
    def log_proposal_ratio(self, x: Array, x_new: Array, rule_state: Any) -> Array:
        """`log q(x|x_new) - log q(x_new|x)` per chain, `(n_chains,)`: the
        Hastings correction added to `log p(x_new) - log p(x)`."""
        raise NotImplementedError

    def draw(self, key, n_sweeps, n, x, rule_state):
        k_move, k_u = jax.random.split(key)
        n_chains = x.shape[0]
        moves = self.moves(k_move, (n_sweeps * n, n_chains), x, rule_state)
        moves = jax.tree.map(lambda m: m.reshape((n_sweeps, n) + m.shape[1:]), moves)
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        # drawn as 2-d arrays: XLA compiles the threefry of a 3-d shape several times slower
        log_u = jnp.log(jax.random.uniform(k_u, (n_sweeps * n, n_chains), dtype=dtype))
        return moves, log_u.reshape(n_sweeps, n, n_chains)

    def sweep(self, distribution, x, log_prob, rule_state, randoms, n):
        moves, log_u = randoms
        propose = lambda y, move: self.propose(y, move, rule_state)  # noqa: E731
        log_ratio = None if isinstance(self, AbstractSymmetricRule) else (lambda y, yn, _: self.log_proposal_ratio(y, yn, rule_state))
        return metropolis_steps(
            jax.vmap(distribution.log_prob), propose, x, log_prob, moves, log_u.astype(log_prob.dtype), log_ratio
        )

    def transition(self, distribution, x, log_prob, rule_state, key, n):
        randoms = jax.tree.map(lambda r: r[0], self.draw(key, 1, n, x, rule_state))
        return self.sweep(distribution, x, log_prob, rule_state, randoms, n)

    def proposals_per_step(self, x):
        return 1


class AbstractSymmetricRule(AbstractProposalRule):
    """Symmetric proposals `q(x'|x) = q(x|x')` of the whole configuration,
    accepted with probability `min(1, p(x') / p(x))` (`metropolis_steps`).
    Subclasses draw the random moves and apply them."""

    def log_proposal_ratio(self, x, x_new, rule_state):
        return jnp.zeros(x.shape[0], dtype=jax.dtypes.canonicalize_dtype(jnp.float64))


class AbstractFixedSymmetricRule(AbstractSymmetricRule):
    """A symmetric rule with nothing to adapt (state `None`, no diagnostics)."""

    def init_state(self, distribution, x):
        return None

    def adapt(self, rule_state, acceptance):
        return rule_state

    def info(self, rule_state):
        return {}


def adapt_width(width: Array, acceptance: Scalar, target: float, rate: float) -> Array:
    """`width * exp(rate * (acceptance - target))`, kept in `[1e-6, 1e3]`: the
    stochastic-approximation update of a proposal width towards a target
    acceptance (Robbins-Monro on `log width`)."""
    width = width * jnp.exp(rate * (acceptance.astype(width.dtype) - target))
    return jnp.clip(width, 1e-6, 1e3)


class AbstractMetropolisSampler(AbstractSampler):
    """Metropolis-Hastings over a rule, vectorised over chains (the engine;
    `MetropolisSampler` is its generic final form, plugins derive thin final
    classes with their own constructor arguments).

    One call to `sample` recomputes the cached log-probabilities (the
    distribution has usually changed since the last call), runs
    `n_discard_per_chain` sweeps that are thrown away, then
    `n_samples_per_chain` sweeps, storing the configuration after each. A sweep
    is `sweep_size` steps of the rule per chain. The first call on fresh chains
    (from `init`, not from a checkpoint) first runs `n_thermalize` sweeps more.
    The rule adapts its state (a width) after each thermalisation and discarded
    sweep; while samples are stored it is fixed, so the stored chain satisfies
    detailed balance. `info["acceptance"]` is the acceptance of the discarded
    and stored sweeps of this call (mean over chains), `info["acceptance_min"]`
    that of the least mobile chain, `info["frozen_fraction"]` the fraction of
    chains that accepted nothing in this call (the sampling health of
    `nqs_core._health`), plus the rule's `info`.
    """

    space: eqx.AbstractVar[AbstractSpace]
    rule: eqx.AbstractVar[AbstractMetropolisRule]
    n_samples: eqx.AbstractVar[int]
    n_chains: eqx.AbstractVar[int]
    n_discard_per_chain: eqx.AbstractVar[int]
    sweep_size: eqx.AbstractVar[int]
    n_thermalize: eqx.AbstractVar[int]

    def init(self, distribution: AbstractDistribution, key: PRNGKeyArray) -> MetropolisState:
        """Random initial chains from `space.random_state`, their
        log-probabilities and the rule's initial state."""
        return _init(self, distribution, legacy_key(key))

    def sample(
        self, distribution: AbstractDistribution, state: MetropolisState
    ) -> tuple[Array, MetropolisState, dict[str, Array]]:
        """Run the chains.

        **Returns:** `(samples, new_state, info)` with samples of shape
        `(n_chains, n_samples_per_chain, *shape)`.
        """
        return _sample(self, distribution, state)


def metropolis_counts(space: AbstractSpace, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize, min_discard: int = 0):
    """Checked `(n_samples, n_chains, n_discard_per_chain, sweep_size,
    n_thermalize)`; `None` defaults: `max(n_samples_per_chain // 10,
    min_discard)` discarded sweeps, `space.size` steps per sweep."""
    n_samples = check_int("n_samples", n_samples, 1)
    n_samples, n_chains = check_chains(n_samples, n_chains)
    per_chain = n_samples // n_chains
    if n_discard_per_chain is None:
        n_discard_per_chain = max(per_chain // 10, min_discard)
    n_discard_per_chain = check_int("n_discard_per_chain", n_discard_per_chain, 0)
    sweep_size = space.size if sweep_size is None else check_int("sweep_size", sweep_size, 1)
    n_thermalize = check_int("n_thermalize", n_thermalize, 0)
    return n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize


class MetropolisSampler(AbstractMetropolisSampler):
    """Metropolis-Hastings sampler for any space and transition rule.

    **Arguments:**

    - `space`: the configuration space (initial chains from `random_state`).
    - `rule`: an `AbstractMetropolisRule`.
    - `n_samples`: total samples per call, over all chains (default 1024);
      a multiple of `n_chains` (`nqs_core.check_chains`): each chain gives `n_samples / n_chains`.
    - `n_chains`: number of parallel chains (default 16).
    - `n_discard_per_chain`: sweeps thrown away (the rule adapts during them)
      at the start of each call (default: `n_samples_per_chain // 10`).
    - `sweep_size`: rule steps per chain between stored samples (default:
      `space.size`).
    - `n_thermalize`: sweeps run once on fresh chains, before the first call's
      samples (default 20; chains restored from a checkpoint are not fresh),
      rounded up to whole blocks of the random draws (a divisor of the
      discarded + stored sweeps per call).

    **Example:**

    ```python
    sampler = MetropolisSampler(space, MyRule(), n_samples=512, n_chains=8)
    state = sampler.init(BornDistribution(ansatz), jax.random.PRNGKey(0))
    samples, state, info = sampler.sample(BornDistribution(ansatz), state)
    ```
    """

    space: AbstractSpace
    rule: AbstractMetropolisRule
    n_samples: int = eqx.field(static=True)
    n_chains: int = eqx.field(static=True)
    n_discard_per_chain: int = eqx.field(static=True)
    sweep_size: int = eqx.field(static=True)
    n_thermalize: int = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractSpace,
        rule: AbstractMetropolisRule,
        n_samples: int = 1024,
        n_chains: int = 16,
        n_discard_per_chain: int | None = None,
        sweep_size: int | None = None,
        n_thermalize: int = 20,
    ):
        if not isinstance(space, AbstractSpace):
            raise TypeError(f"MetropolisSampler needs a space (AbstractSpace), got {type(space).__name__}")
        if not isinstance(rule, AbstractMetropolisRule):
            raise TypeError(f"MetropolisSampler needs a rule (AbstractMetropolisRule), got {type(rule).__name__}")
        self.space = space
        self.rule = rule
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = metropolis_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)


@eqx.filter_jit
def _init(sampler, distribution, key):
    key, sub = jax.random.split(key)
    x = sampler.space.random_state(sub, sampler.n_chains)
    lp = jax.vmap(distribution.log_prob)(x)
    return MetropolisState(
        x=x,
        log_prob=lp,
        key=key,
        rule_state=sampler.rule.init_state(distribution, x),
        n_accepted=jnp.zeros(sampler.n_chains, dtype=jnp.int64),
        n_steps=jnp.zeros((), dtype=jnp.int64),
    )


# bytes of random numbers drawn at once (the draws of a block of sweeps)
_DRAW_BYTES = 1 << 24


def _block_size(rule, n_run, sweep, x, rule_state):
    """Sweeps whose random numbers `rule.draw` draws together.

    At most what fits in `_DRAW_BYTES`, and a divisor of the `n_run` sweeps of
    every call where a large enough one exists (at least 1/16 of that), so that
    no sweep of a call is padding; otherwise the last block is padded. It does
    not depend on `n_thermalize`: a call on chains that are not fresh draws the
    same numbers with or without thermalisation. Thermalisation runs whole
    blocks (`n_thermalize` rounded up to a multiple: more thermalisation on the
    first call, instead of a padding test in every sweep of every call)."""
    one = jax.eval_shape(lambda k: rule.draw(k, 1, sweep, x, rule_state), jax.ShapeDtypeStruct((2,), jnp.uint32))
    per_sweep = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(one))
    cap = max(1, min(n_run, _DRAW_BYTES // max(per_sweep, 1)))
    best = max(d for d in range(1, cap + 1) if n_run % d == 0)
    return best if 16 * best >= cap else cap


@eqx.filter_jit
def _sample(sampler, distribution, state):
    rule = sampler.rule
    x = state.x
    n_chains = x.shape[0]
    sweep = sampler.sweep_size
    per_step = rule.proposals_per_step(x)
    n_keep = sampler.n_samples_per_chain
    n_discard = sampler.n_discard_per_chain
    n_th = sampler.n_thermalize
    lp = jax.vmap(distribution.log_prob)(x)  # parameters changed since the last call
    key, k_sweeps = jax.random.split(state.key)
    # The random numbers of a block of sweeps are drawn at once (`rule.draw`: one
    # vectorised draw instead of one per sweep). The thermalisation sweeps, which
    # run only on fresh chains, have blocks of their own (keys of their own too),
    # skipped otherwise.
    n_run = n_discard + n_keep
    block = _block_size(rule, n_run, sweep, x, state.rule_state)
    n_th_blocks, n_run_blocks = -(-n_th // block), -(-n_run // block)
    block_keys = jax.random.split(k_sweeps, n_run_blocks)
    if n_th:
        block_keys = jnp.concatenate([jax.random.split(jax.random.fold_in(k_sweeps, 1), n_th_blocks), block_keys])
    # per sweep slot: is it a real sweep (not padding of the last block), does it
    # count (thermalisation does not), does the rule adapt after it (not while storing)
    pos_th, pos_run = jnp.arange(n_th_blocks * block), jnp.arange(n_run_blocks * block)
    real = jnp.concatenate([pos_th >= 0, pos_run < n_run]).reshape(-1, block)
    adapting = jnp.concatenate([pos_th >= 0, pos_run < n_discard]).reshape(-1, block)
    counted = jnp.arange(n_th_blocks + n_run_blocks) >= n_th_blocks
    padded = n_run_blocks * block != n_run
    fresh = state.n_steps == 0

    def one_sweep(count, carry, inputs):
        randoms, is_real, adapt = inputs
        x, lp, rule_state, acc = carry
        x, lp, n_acc = rule.sweep(distribution, x, lp, rule_state, randoms, sweep)
        rate = jnp.sum(n_acc).astype(lp.dtype) / (n_chains * sweep * per_step)
        adapted = rule.adapt(rule_state, rate)
        rule_state = jax.tree.map(lambda a, b: jnp.where(adapt, a, b), adapted, rule_state)
        new = x, lp, rule_state, acc + jnp.where(count, n_acc, 0)
        if padded:  # a padding slot leaves everything as it was
            new = jax.tree.map(lambda a, b: jnp.where(is_real, a, b), new, carry)
        return new, new[0]

    def one_block(carry, inputs):
        block_key, count, is_real, adapt = inputs

        def run(carry):
            randoms = rule.draw(block_key, block, sweep, carry[0], carry[2])
            return jax.lax.scan(lambda c, i: one_sweep(count, c, i), carry, (randoms, is_real, adapt))

        if not n_th:
            return run(carry)
        # thermalisation blocks run on fresh chains only
        skip = lambda c: (c, jnp.broadcast_to(c[0], (block,) + c[0].shape))  # noqa: E731
        return jax.lax.cond(count | fresh, run, skip, carry)

    # one scan over blocks of sweeps (one copy of the sweep to compile); the
    # configurations of the thermalisation, discarded and padding sweeps are dropped
    carry = (x, lp, state.rule_state, jnp.zeros(n_chains, dtype=jnp.int64))
    carry, stored = jax.lax.scan(one_block, carry, (block_keys, counted, real, adapting))
    stored = stored.reshape((-1,) + stored.shape[2:])
    start = n_th_blocks * block + n_discard
    samples = stored[start : start + n_keep]
    x, lp, rule_state, acc = carry
    n_steps = (n_discard + n_keep) * sweep
    new_state = MetropolisState(
        x=x,
        log_prob=lp,
        key=key,
        rule_state=rule_state,
        n_accepted=state.n_accepted + acc,
        n_steps=state.n_steps + n_steps,
    )
    per_chain = acc.astype(lp.dtype) / (n_steps * per_step)
    info = {
        "acceptance": jnp.mean(per_chain),
        "acceptance_min": jnp.min(per_chain),  # sampling health (nqs_core._health)
        "frozen_fraction": jnp.mean((acc == 0).astype(lp.dtype)),  # chains that did not move in this call
    }
    return jnp.swapaxes(samples, 0, 1), new_state, {**info, **rule.info(rule_state)}
