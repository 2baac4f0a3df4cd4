"""Metropolis rules for spin-1/2 configurations, registered by name (kind `rule`)
for the `metropolis` and `parallel_tempering` samplers: local and multi-spin
flips, exchanges, the global spin flip, the `jump` (independence) move."""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nqs_core

from ._sampler import ExchangeRule, LocalFlipRule, LocalStateRule
from ._space import check_sizes, check_spin_space


class GlobalFlipRule(nqs_core.AbstractFixedSymmetricRule):
    """Invert every spin of a chain, `x -> -x` (a symmetric, deterministic move).

    It maps `S^z` to `-S^z`: valid on the full space and in the `S^z = 0`
    sector only. Alone it is not ergodic; mix it with a local rule to jump
    between the two halves of a Z2-symmetric `|psi|^2`."""

    def moves(self, key, shape, x, rule_state):
        return jnp.zeros(shape, dtype=jnp.int8)

    def propose(self, x, move, rule_state):
        return -x


class MultiFlipRule(nqs_core.AbstractFixedSymmetricRule):
    """Flip `k` distinct, uniformly chosen spins of a chain at once (symmetric:
    flipping the same sites undoes the move; changes the magnetisation).

    **Arguments:**

    - `n_sites`: number of spins of a configuration.
    - `k`: spins flipped per move, `1 <= k <= n_sites`.
    """

    n_sites: int = eqx.field(static=True)
    k: int = eqx.field(static=True)

    def moves(self, key, shape, x, rule_state):
        # the k smallest of n_sites uniform numbers: k distinct uniform sites
        u = jax.random.uniform(key, shape + (self.n_sites,), dtype=jnp.float32)
        _, sites = jax.lax.top_k(-u, self.k)
        return sites.astype(jnp.int32)

    def propose(self, x, sites, rule_state):
        flip = jnp.any(jnp.arange(x.shape[-1], dtype=jnp.int32)[None, :, None] == sites[:, None, :], axis=-1)
        return jnp.where(flip, -x, x)


class JumpRule(nqs_core.AbstractProposalRule):
    """An independence proposal: a new configuration drawn without looking at
    the current one, from `q = p_polarized * (half all-up, half all-down)
    + (1 - p_polarized) * uniform`, accepted with the Hastings ratio
    `min(1, p(x') q(x) / (p(x) q(x')))` (Hastings 1970, Eq. 2.1; Tierney 1994,
    Markov chains for exploring posterior distributions, Ann. Statist. 22,
    1701, Sec. 2.3.3). It reaches the fully polarised configurations from any
    sector in one step, and any configuration from them, so a weight of
    `|psi|^2` on an isolated configuration that no local move leads to is
    visited as often as `p` says.

    **Arguments:**

    - `n_sites`: number of spins of a configuration.
    - `p_polarized`: probability of proposing a polarised configuration, in `[0, 1)`.
    """

    n_sites: int = eqx.field(static=True)
    p_polarized: float = eqx.field(static=True)

    def init_state(self, distribution, x):
        return None

    def adapt(self, rule_state, acceptance):
        return rule_state

    def info(self, rule_state):
        return {}

    def moves(self, key, shape, x, rule_state):
        k_bits, k_pol, k_sign = jax.random.split(key, 3)
        bits = jax.random.bernoulli(k_bits, 0.5, shape + (self.n_sites,))
        polarized = jax.random.bernoulli(k_pol, self.p_polarized, shape)
        up = jax.random.bernoulli(k_sign, 0.5, shape)
        # row i: the proposal itself, as booleans (True = up)
        return jnp.where(polarized[..., None], up[..., None], bits)

    def propose(self, x, up, rule_state):
        return jnp.where(up, 1, -1).astype(x.dtype)

    def _log_q(self, x):
        polarized = jnp.all(x == x[:, :1], axis=1)
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        uniform = np.log1p(-self.p_polarized) - self.n_sites * np.log(2.0)
        special = np.logaddexp(np.log(self.p_polarized / 2) if self.p_polarized > 0 else -np.inf, uniform)
        return jnp.where(polarized, jnp.asarray(special, dtype), jnp.asarray(uniform, dtype))

    def log_proposal_ratio(self, x, x_new, rule_state):
        return self._log_q(x) - self._log_q(x_new)


def _check_local_space(owner: str, space) -> None:
    """Spin 1/2, or any local space with configurations of shape `(n_sites,)`."""
    if not (isinstance(space, nqs_core.AbstractLocalSpace) and len(space.shape) == 1):
        check_spin_space(owner, space)


def _unconstrained(owner: str, space, what: str, check=check_spin_space) -> None:
    check(owner, space)
    if space.constraint is not None:
        raise ValueError(
            f"rule {owner!r} {what}, so it cannot sample a space with fixed total_sz={space.constraint.total / 2:g}; "
            "use the exchange rule there"
        )


def local(space) -> LocalFlipRule | LocalStateRule:
    """Flip one uniformly chosen spin (changes S^z: full space only); on d-level
    sites (spin S) set it to another local state, chosen uniformly.

    **Arguments:** none (the space comes from the config).
    """
    _unconstrained("local", space, "flips single spins, which changes S^z", _check_local_space)
    if isinstance(space, nqs_core.AbstractLocalSpace) and space.local_dim > 2:
        return LocalStateRule(space.size, tuple(float(v) for v in space.local_values))
    return LocalFlipRule(space.size)


def exchange(space, lattice=None) -> ExchangeRule:
    """Swap the spins of a random nearest-neighbour bond of the lattice (all pairs
    of sites without a lattice); conserves S^z for any spin S.

    **Arguments:** none (the space and the lattice come from the config).
    """
    _check_local_space("exchange", space)
    if lattice is None:
        pairs = list(itertools.combinations(range(space.size), 2))
    else:
        check_sizes(space.size, lattice)
        pairs = list(lattice.edges(1))
    if not pairs:
        raise ValueError("rule 'exchange' needs at least one pair of sites to exchange")
    return ExchangeRule(jnp.asarray(np.asarray(pairs, dtype=np.int32)))


def global_flip(space) -> GlobalFlipRule:
    """Invert all spins, `S^z -> -S^z` (full space or the `S^z = 0` sector); mix it
    with a local rule for a Z2-symmetric `|psi|^2`.

    **Arguments:** none.
    """
    check_spin_space("global_flip", space)
    if space.constraint is not None and abs(space.constraint.total) > 1e-9:
        raise ValueError(
            f"rule 'global_flip' maps S^z to -S^z, which leaves the sector total_sz={space.constraint.total / 2:g}; "
            "use it on the full space or at total_sz = 0"
        )
    return GlobalFlipRule()


def multi_flip(space, k: int = 2) -> MultiFlipRule:
    """Flip `k` distinct random spins at once (changes S^z: full space only).

    **Arguments:**

    - `k`: spins flipped per move (default 2; `1 <= k <= n_sites`).
    """
    _unconstrained("multi_flip", space, "flips spins, which changes S^z")
    k = nqs_core.check_int("k", k, 1)
    if k > space.size:
        raise ValueError(f"rule 'multi_flip': k = {k} is more than the {space.size} sites")
    return MultiFlipRule(space.size, k)


def jump(space, p_polarized: float = 0.5) -> JumpRule:
    """Propose a new configuration independent of the current one: fully
    polarised (all up or all down) with probability `p_polarized`, else uniform;
    accepted with the Hastings ratio (full space only). Reaches isolated
    configurations that no local or multi-spin move leads to.

    **Arguments:**

    - `p_polarized`: probability of proposing one of the two polarised
      configurations (default 0.5; `0 <= p_polarized < 1`).
    """
    _unconstrained("jump", space, "draws configurations of any S^z")
    if isinstance(p_polarized, bool) or not isinstance(p_polarized, (int, float)) or not 0.0 <= p_polarized < 1.0:
        raise ValueError(f"rule 'jump': p_polarized must be a number in [0, 1), got {p_polarized!r}")
    return JumpRule(space.size, float(p_polarized))
