"""The `jump` rule (an independence proposal with the Hastings ratio): its
proposal density against an independent formula, and the exact distribution,
checked by enumeration, of a needle (an isolated configuration carrying weight
that no local move leads to) alone, in a mixture and inside parallel tempering."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_mixture import RBMDistribution, assert_histogram, draw, exact_probabilities, spin_space

import nqs_core

REG = nqs_core.get_registry()


class TableDistribution(nqs_core.AbstractDistribution):
    """`log p` read from a table over the configurations, in `itertools.product` order."""

    log_table: jax.Array

    def log_prob(self, x):
        n = x.shape[-1]
        index = jnp.sum((x > 0).astype(jnp.int32) * (1 << jnp.arange(n - 1, -1, -1, dtype=jnp.int32)))
        return self.log_table[index]


def needle(n=8, weight=0.05):
    """Configurations near `S^z = 0` (`log p = -(sum x)^2 / 4`), those within 3 flips of
    all-up suppressed by `e^-25`, and all-up itself holding `weight` of `p`: the
    situation of the XXZ chain of issue 27, where no random walk reaches the weight."""
    states, _ = exact_probabilities(RBMDistribution(a=jnp.zeros(n), W=jnp.zeros((1, n)), b=jnp.zeros(1)), n)
    m = states.sum(axis=1)
    log_p = -(m**2) / 4.0
    log_p[m >= n - 6] = -25.0
    p = np.exp(log_p)
    up = m == n
    p[up] = 0.0
    p *= (1.0 - weight) / p.sum()
    p[up] = weight
    return TableDistribution(jnp.asarray(np.log(p))), states, p


def test_proposal_density_matches_an_independent_formula():
    n, p_pol = 5, 0.3
    rule = REG.get("rule", "jump").obj(spin_space(n), p_polarized=p_pol)
    x = jnp.asarray([[1.0] * n, [-1.0] * n, [1.0, -1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, -1.0, 1.0]])
    y = jnp.asarray([[1.0, -1.0, 1.0, 1.0, 1.0], [1.0] * n, [-1.0] * n, [-1.0, -1.0, 1.0, -1.0, 1.0]])

    def q(z):  # q(z) = p_pol / 2 on the two polarised configurations, plus (1 - p_pol) 2^-n on every one
        return (1 - p_pol) * 2.0**-n + (p_pol / 2 if abs(z.sum()) == n else 0.0)

    want = [np.log(q(np.asarray(a)) / q(np.asarray(b))) for a, b in zip(x, y)]
    np.testing.assert_allclose(np.asarray(rule.log_proposal_ratio(x, y, None)), want, rtol=1e-13)
    # the proposals: a fraction p_pol polarised, half of them up; the rest uniform
    moves = rule.moves(jax.random.PRNGKey(0), (4000, 2), x, None)
    props = np.asarray(rule.propose(x[:1].repeat(2, 0), moves[0], None))
    assert props.shape == (2, n) and set(np.unique(props)) <= {-1.0, 1.0}
    sums = np.asarray(jnp.where(moves, 1, -1).sum(axis=-1)).ravel()
    pol = np.abs(sums) == n
    expected = p_pol + (1 - p_pol) * 2 * 2.0**-n
    assert abs(pol.mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / pol.size)
    assert abs((sums == n).mean() - expected / 2) < 4 * np.sqrt(expected / 2 / pol.size)
    with pytest.raises(ValueError, match="p_polarized must be a number in \\[0, 1\\)"):
        REG.get("rule", "jump").obj(spin_space(n), p_polarized=1.0)
    with pytest.raises(ValueError, match="'jump' draws configurations of any S\\^z.*total_sz=0"):
        REG.get("rule", "jump").obj(spin_space(4, total_sz=0.0))


@pytest.mark.parametrize("kind", ["jump", "mixture", "tempering"])
def test_jump_samples_a_needle_that_local_flips_miss(kind):
    n = 8
    dist, states, p = needle(n)
    up = states.sum(axis=1) == n
    space = spin_space(n)
    key = jax.random.PRNGKey(3)
    if kind == "jump":  # alone: a pure independence sampler
        sampler = nqs_core.MetropolisMixture(space, [{"name": "jump", "p_polarized": 0.2}], n_samples=512, n_chains=16)
        tau = 1.0
    elif kind == "mixture":
        sampler = nqs_core.MetropolisMixture(space, [{"name": "local", "weight": 0.8}, {"name": "jump", "weight": 0.2}],
                                             n_samples=512, n_chains=16)
        tau = 3.0
    else:  # the ratio of q is not tempered: every replica samples p^beta exactly
        sampler = nqs_core.ParallelTempering(space, [{"name": "local", "weight": 0.8}, {"name": "jump", "weight": 0.2}],
                                             n_replicas=3, beta_min=0.3, n_samples=512, n_chains=16)
        tau = 3.0
    chains, info = draw(sampler, dist, key)
    flat = chains.reshape(-1, n)
    frac_up = np.mean(flat.sum(axis=1) == n)
    assert abs(frac_up - p[up].sum()) < 0.02, frac_up  # 0.05 +- 0.005 (binomial, 2048 samples)
    assert_histogram(chains, p, tau=tau)
    if kind == "mixture":  # local flips alone never reach the needle
        local = REG.get("sampler", "metropolis_local").obj(space, n_samples=512, n_chains=16)
        flat, _ = draw(local, dist, key)
        assert np.mean(flat.reshape(-1, n).sum(axis=1) == n) == 0.0
