"""Rule mixtures (`metropolis` sampler, `MixtureRule`) and the spin moves they
add (global flip, multi-spin flip): exact distributions by enumeration, a
bimodal |psi|^2 that local flips cannot cross, the config syntax and its errors."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs_core
from nqs_core import testing

REG = nqs_core.get_registry()


class RBMDistribution(nqs_core.AbstractDistribution):
    """`|psi|^2` of a real RBM, `log psi(x) = a.x + sum_j log cosh(W_j.x + b_j)`
    (written here, independently of the library's RBM)."""

    a: jax.Array
    W: jax.Array
    b: jax.Array

    def log_prob(self, x):
        return 2.0 * (self.a @ x + jnp.sum(jnp.log(jnp.cosh(self.W @ x + self.b))))


def exact_probabilities(dist, n):
    """`p(x)` on every configuration of `n` spins, by enumeration in numpy."""
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    a, W, b = (np.asarray(t) for t in (dist.a, dist.W, dist.b))
    log_p = 2.0 * (states @ a + np.sum(np.log(np.cosh(states @ W.T + b)), axis=1))
    p = np.exp(log_p - log_p.max())
    return states, p / p.sum()


def bimodal(n=8, w=1.5, bias=0.04):
    """One hidden unit coupled to the magnetisation: two modes, all up and all
    down, with weights in the ratio `exp(4 n bias)`, separated by a barrier of `exp(-2 n w)`."""
    return RBMDistribution(a=jnp.full(n, bias), W=jnp.full((1, n), w), b=jnp.zeros(1))


def assert_histogram(chains, p, tau):
    """Total-variation distance between the histogram of the samples and `p` below
    3x its expected value for `n / (1 + 2 tau)` independent samples."""
    n = chains.shape[-1]
    flat = chains.reshape(-1, n)
    index = ((flat > 0).astype(int) * (1 << np.arange(n)[::-1])).sum(axis=1)  # itertools.product order
    hist = np.bincount(index, minlength=p.size) / index.size
    tv = 0.5 * np.abs(hist - p).sum()
    bound = 3.0 * testing.expected_tv_distance(p, index.size / (1.0 + 2.0 * tau))
    assert tv < bound, (tv, bound)


def spin_space(n, total_sz=None):
    return REG.get("space", "spin_half").obj(n_sites=n, total_sz=total_sz)


def draw(sampler, dist, key, n_calls=4):
    state = sampler.init(dist, key)
    out = []
    for _ in range(n_calls):
        x, state, info = eqx.filter_jit(sampler.sample)(dist, state)
        out.append(np.asarray(x))
    return np.concatenate(out, axis=1), info


def mode_weights(chains):
    """Fraction of samples with positive magnetisation, per chain and overall."""
    up = chains.sum(axis=-1) > 0
    return up.mean(axis=1), up.mean()


def test_mixture_of_local_and_global_flip_crosses_the_barrier_local_flips_cannot():
    n = 8
    dist = bimodal(n)
    states, p = exact_probabilities(dist, n)
    p_up = p[states.sum(axis=1) > 0].sum()  # 0.78
    space = spin_space(n)
    key = jax.random.PRNGKey(5)
    local = REG.get("sampler", "metropolis_local").obj(space, n_samples=512, n_chains=16)
    chains, _ = draw(local, dist, key)
    per_chain, overall = mode_weights(chains)
    assert set(np.unique(per_chain)) == {0.0, 1.0}  # every local chain stays in the mode it fell into
    assert abs(overall - p_up) > 0.1  # the pooled weight is that of the random start, not p_up
    mix = nqs_core.MetropolisMixture(space, [{"name": "local", "weight": 0.9}, {"name": "global_flip", "weight": 0.1}],
                                     n_samples=512, n_chains=16)
    chains, info = draw(mix, dist, key)
    per_chain, overall = mode_weights(chains)
    assert np.all((per_chain > 0) & (per_chain < 1))  # every chain visits both modes
    # 2048 samples of chains that switch modes every few sweeps: binomial error ~0.01-0.02
    assert abs(overall - p_up) < 0.06, (overall, p_up)
    assert_histogram(chains, p, tau=3.0)


@pytest.mark.parametrize("rules", [
    [{"name": "local", "weight": 0.6}, {"name": "multi_flip", "k": 3, "weight": 0.3}, {"name": "global_flip", "weight": 0.1}],
    ["local", "multi_flip"],
])
def test_mixture_samples_a_random_rbm_exactly(rules):
    n = 7
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(2), 3)
    dist = RBMDistribution(a=0.2 * jax.random.normal(k1, (n,)), W=0.25 * jax.random.normal(k2, (2 * n, n)),
                           b=0.3 * jax.random.normal(k3, (2 * n,)))
    sampler = nqs_core.MetropolisMixture(spin_space(n), rules, n_samples=1024, n_chains=16)
    states, p = exact_probabilities(dist, n)
    chains, info = draw(sampler, dist, jax.random.PRNGKey(0))
    assert_histogram(chains, p, tau=1.0)
    assert 0.0 < float(info["acceptance"]) < 1.0


class SlowLocalRule(nqs_core.AbstractMetropolisRule):
    """A single-spin-flip rule with its own accept test (not an AbstractSymmetricRule):
    exercises the mixture's path for general rules."""

    n_sites: int = eqx.field(static=True)

    def init_state(self, distribution, x):
        return None

    def transition(self, distribution, x, log_prob, rule_state, key, n):
        k1, k2 = jax.random.split(key)
        sites = jax.random.randint(k1, (n, x.shape[0]), 0, self.n_sites)
        flip = lambda y, s: jnp.where(jnp.arange(y.shape[-1])[None] == s[:, None], -y, y)  # noqa: E731
        return nqs_core.metropolis_sweep(jax.vmap(distribution.log_prob), flip, x, log_prob, sites, k2)

    def adapt(self, rule_state, acceptance):
        return rule_state

    def info(self, rule_state):
        return {}

    def proposals_per_step(self, x):
        return 1


def test_mixture_with_a_general_rule_samples_exactly():
    n = 6
    dist = bimodal(n, w=1.2, bias=0.08)
    rule = nqs_core.MixtureRule([SlowLocalRule(n), REG.get("rule", "global_flip").obj(spin_space(n))], [0.85, 0.15])
    sampler = nqs_core.MetropolisSampler(spin_space(n), rule, n_samples=512, n_chains=16)
    testing.check_sampler(sampler, dist, jax.random.PRNGKey(1))


def test_config_syntax_and_errors():
    text = """
[run]
exact_energy = "none"
[lattice]
name = "chain"
length = 4
[space]
name = "spin_half"
{space}
[system]
name = "heisenberg"
[ansatz]
name = "rbm"
[sampler]
name = "metropolis"
{rules}
"""

    def build(rules, space=""):
        return nqs_core.build(nqs_core.loads_config(text.format(rules=rules, space=space)), exact=False, stop_after="sampler")

    calc = build('rules = [{ name = "exchange", weight = 3 }, { name = "global_flip", weight = 1 }]', "total_sz = 0.0")
    rule = calc["sampler"].rule
    assert isinstance(rule, nqs_core.MixtureRule) and rule.weights == (0.75, 0.25) and rule.names == ("exchange", "global_flip")
    assert calc.config["sampler"]["rules"][0] == {"name": "exchange", "weight": 3}
    assert type(build('rules = ["local"]')["sampler"].rule).__name__ == "LocalFlipRule"  # one rule: no mixture
    with pytest.raises(nqs_core.ConfigError, match="unknown rule 'flip'; valid rule names: .*global_flip.*local"):
        build('rules = ["flip"]')
    with pytest.raises(nqs_core.ConfigError, match="rule 'multi_flip': unknown field.*kk.*valid fields: k"):
        build('rules = [{ name = "multi_flip", kk = 2 }]')
    with pytest.raises(nqs_core.ConfigError, match="weight of rule 'local' must be a positive number"):
        build('rules = [{ name = "local", weight = 0 }]')
    with pytest.raises(nqs_core.ConfigError, match="global_flip.*leaves the sector total_sz=1"):
        build('rules = ["exchange", "global_flip"]', "total_sz = 1.0")
    with pytest.raises(nqs_core.ConfigError, match="'local' flips single spins.*total_sz=0"):
        build('rules = ["local"]', "total_sz = 0.0")
    with pytest.raises(nqs_core.ConfigError, match="missing field 'rules'"):
        build("")
    with pytest.raises(nqs_core.ConfigError, match="k = 9 is more than the 4 sites"):
        build('rules = [{ name = "multi_flip", k = 9 }]')


def test_mixture_of_field_rules_samples_the_free_field():
    """The phi^4 checkerboard update (its own accept test: the mixture's general
    path) mixed with a global Gaussian move, on a free field (lam = 0) whose
    moments are exact (`testing.gaussian_moments`)."""
    space = REG.get("space", "phi4_field").obj(L0=4, L1=4)
    action = REG.get("system", "phi4").obj(space, L0=4, L1=4, m2=1.0, lam=0.0)
    sampler = nqs_core.MetropolisMixture(
        space, [{"name": "checkerboard", "weight": 0.7}, {"name": "gaussian", "step_size": 0.1, "weight": 0.3}],
        n_samples=256, n_chains=8, n_thermalize=100, sweep_size=2,
    )
    assert isinstance(sampler.rule, nqs_core.MixtureRule)
    testing.check_sampler(sampler, nqs_core.BoltzmannDistribution(action), jax.random.PRNGKey(3))
