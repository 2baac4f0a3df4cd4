"""Mixtures of Metropolis rules and the `metropolis` sampler that takes rules by name.

A mixture picks, for every step of every chain, one of its rules at random
with fixed weights and makes that rule's move. Each rule leaves the target
distribution invariant, and a mixture of invariant kernels with weights that do
not depend on the configuration is invariant too (Tierney 1994, Markov chains
for exploring posterior distributions, Ann. Statist. 22, 1701, Sec. 2.3); if
every rule also satisfies detailed balance, so does the mixture. So a rule that
moves far (a global spin flip, a multi-spin move) can be added to a local rule
without biasing anything.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._config import BuildContext, ConfigError, _construct
from ._metropolis import AbstractMetropolisRule, AbstractMetropolisSampler, AbstractProposalRule, AbstractSymmetricRule, metropolis_counts
from ._registry import Registry, RegistryError, get_registry
from ._sampler import metropolis_steps
from ._space import AbstractSpace


class MixtureRule(AbstractMetropolisRule):
    """Each step of each chain makes the move of one rule, drawn with `weights`.

    With proposal rules only (`AbstractProposalRule`: local flips, exchanges,
    global or multi-spin flips, Gaussian moves, the `jump` move) the chosen
    rule's proposal is tested once with `min(1, p(x') q(x|x') / (p(x) q(x'|x)))`,
    `q` the chosen rule's proposal (the ratio is 1 for symmetric rules): one
    evaluation of `log p` per step.
    Any other rule (one that runs its own accept test, e.g. the phi^4
    checkerboard update) is run on every chain and the chosen rule's result
    kept: valid for every rule that leaves `p` invariant, at the cost of one
    step of every rule per step.

    A rule's adapted state (a width) is adapted with the acceptance of the whole
    mixture. `info` reports each rule's diagnostics prefixed by its name.

    **Arguments:**

    - `rules`: the rules, a sequence of `AbstractMetropolisRule`.
    - `weights`: their probabilities, positive numbers (normalised here).
    - `names`: labels for `info` (default `rule0`, `rule1`, ...).
    """

    rules: tuple[AbstractMetropolisRule, ...]
    weights: tuple[float, ...] = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, rules, weights=None, names=None):
        rules = tuple(rules)
        if not rules or not all(isinstance(r, AbstractMetropolisRule) for r in rules):
            raise TypeError("MixtureRule needs a non-empty sequence of rules (AbstractMetropolisRule)")
        weights = (1.0,) * len(rules) if weights is None else tuple(weights)
        if len(weights) != len(rules):
            raise ValueError(f"MixtureRule: {len(rules)} rules but {len(weights)} weights")
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w <= 0:
                raise ValueError(f"rule weights must be positive numbers, got {w!r}")
        total = float(sum(weights))
        self.rules = rules
        self.weights = tuple(float(w) / total for w in weights)
        names = tuple(f"rule{i}" for i in range(len(rules))) if names is None else tuple(names)
        if len(names) != len(rules):
            raise ValueError(f"MixtureRule: {len(rules)} rules but {len(names)} names")
        self.names = names

    @property
    def _symmetric(self) -> bool:
        # every rule draws a proposal: one accept test per step (Hastings-corrected where needed)
        return all(isinstance(r, AbstractProposalRule) for r in self.rules)

    @property
    def _hastings(self) -> bool:
        return not all(isinstance(r, AbstractSymmetricRule) for r in self.rules)

    def init_state(self, distribution, x):
        return tuple(r.init_state(distribution, x) for r in self.rules)

    def _choices(self, key, shape):
        logits = jnp.log(jnp.asarray(self.weights, dtype=jax.dtypes.canonicalize_dtype(jnp.float64)))
        return jax.random.categorical(key, logits, shape=shape).astype(jnp.int32)

    def draw(self, key, n_sweeps, n, x, rule_state):
        n_chains = x.shape[0]
        keys = jax.random.split(key, len(self.rules) + 2)
        which = self._choices(keys[0], (n_sweeps * n, n_chains)).reshape(n_sweeps, n, n_chains)
        if self._symmetric:
            moves = tuple(
                jax.tree.map(
                    lambda m: m.reshape((n_sweeps, n) + m.shape[1:]),
                    r.moves(k, (n_sweeps * n, n_chains), x, s),
                )
                for r, k, s in zip(self.rules, keys[2:], rule_state)
            )
            dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
            log_u = jnp.log(jax.random.uniform(keys[1], (n_sweeps * n, n_chains), dtype=dtype))
            return which, moves, log_u.reshape(n_sweeps, n, n_chains)
        # every step of a general rule is one sweep of length 1 of that rule
        subs = tuple(
            jax.tree.map(lambda a: a.reshape((n_sweeps, n) + a.shape[1:]), r.draw(k, n_sweeps * n, 1, x, s))
            for r, k, s in zip(self.rules, keys[2:], rule_state)
        )
        return which, subs

    def sweep(self, distribution, x, log_prob, rule_state, randoms, n):
        if self._symmetric:
            which, moves, log_u = randoms
            n_chains = x.shape[0]

            def propose(y, step):
                choice, step_moves = step
                proposals = [r.propose(y, m, s) for r, m, s in zip(self.rules, step_moves, rule_state)]
                out = proposals[0]
                for i, p in enumerate(proposals[1:], start=1):
                    pick = (choice == i).reshape((n_chains,) + (1,) * (y.ndim - 1))
                    out = jnp.where(pick, p, out)
                return out

            def log_ratio(y, yn, step):
                choice, _ = step
                out = jnp.zeros(n_chains, dtype=log_prob.dtype)
                for i, (r, s) in enumerate(zip(self.rules, rule_state)):
                    if not isinstance(r, AbstractSymmetricRule):
                        out = jnp.where(choice == i, r.log_proposal_ratio(y, yn, s).astype(out.dtype), out)
                return out

            return metropolis_steps(
                jax.vmap(distribution.log_prob), propose, x, log_prob, (which, moves), log_u.astype(log_prob.dtype),
                log_ratio if self._hastings else None,
            )
        which, subs = randoms

        def step(carry, inputs):
            x, lp, acc = carry
            choice, step_randoms = inputs
            new_x, new_lp, new_acc = x, lp, acc
            for i, (r, rnd, s) in enumerate(zip(self.rules, step_randoms, rule_state)):
                xi, lpi, ai = r.sweep(distribution, x, lp, s, rnd, 1)
                pick = choice == i
                new_x = jnp.where(pick.reshape((x.shape[0],) + (1,) * (x.ndim - 1)), xi, new_x)
                new_lp = jnp.where(pick, lpi, new_lp)
                new_acc = jnp.where(pick, acc + ai, new_acc)
            return (new_x, new_lp, new_acc), None

        carry = (x, log_prob, jnp.zeros(x.shape[0], jnp.int64))
        (x, lp, acc), _ = jax.lax.scan(step, carry, (which, subs))
        return x, lp, acc

    def transition(self, distribution, x, log_prob, rule_state, key, n):
        randoms = jax.tree.map(lambda r: r[0], self.draw(key, 1, n, x, rule_state))
        return self.sweep(distribution, x, log_prob, rule_state, randoms, n)

    def adapt(self, rule_state, acceptance):
        return tuple(r.adapt(s, acceptance) for r, s in zip(self.rules, rule_state))

    def info(self, rule_state):
        out = {}
        for name, r, s in zip(self.names, self.rules, rule_state):
            out.update({f"{name}_{k}": v for k, v in r.info(s).items()})
        return out

    def proposals_per_step(self, x):
        return max(r.proposals_per_step(x) for r in self.rules)


def rules_from_spec(owner: str, space: AbstractSpace, rules, lattice=None, registry: Registry | None = None) -> AbstractMetropolisRule:
    """The rule a `metropolis` or `parallel_tempering` sampler runs, from its
    `rules` field: one rule, or a `MixtureRule` of several.

    **Arguments:**

    - `owner`: the sampler's name, for error messages.
    - `space`, `lattice`: handed to the rules (by argument name, as in a config).
    - `registry`: where rule names are looked up (a config build passes its
      own; default `nqs_core.get_registry()`).
    - `rules`: a sequence whose items are a registered rule name (`"local"`),
      a table `{name = "local", weight = 0.9, ...fields}`, an
      `AbstractMetropolisRule`, or a pair `(rule, weight)`.

    **Returns:** the rule (a `MixtureRule` when there are several).

    **Raises:** `ValueError` (a `ConfigError`) naming the valid rule names or fields.
    """
    if isinstance(rules, (str, dict, AbstractMetropolisRule)):
        rules = [rules]
    if not isinstance(rules, (list, tuple)) or not rules:
        raise ConfigError(f"{owner}: rules must be a non-empty list of rule names or tables, got {rules!r}")
    registry = registry if registry is not None else get_registry()
    valid = ", ".join(registry.names("rule")) or "(none registered)"
    built, weights, names = [], [], []
    context = {"space": space} if lattice is None else {"space": space, "lattice": lattice}
    for i, item in enumerate(rules):
        weight = 1.0
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], AbstractMetropolisRule):
            item, weight = item
        if isinstance(item, AbstractMetropolisRule):
            built.append(item)
            weights.append(weight)
            names.append(type(item).__name__)
            continue
        spec = {"name": item} if isinstance(item, str) else dict(item) if isinstance(item, dict) else None
        if spec is None or not isinstance(spec.get("name"), str):
            raise ConfigError(
                f"{owner}: rule {i + 1} must be a rule name or a table with a 'name' "
                f"(e.g. {{name = \"local\", weight = 0.9}}); valid rule names: {valid}"
            )
        name = spec.pop("name")
        weight = spec.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight <= 0:
            raise ConfigError(f"{owner}: the weight of rule {name!r} must be a positive number, got {weight!r}")
        try:
            entry = registry.get("rule", name)
        except RegistryError:
            raise ConfigError(f"{owner}: unknown rule {name!r}; valid rule names: {valid}") from None
        try:
            rule, _ = _construct(entry, spec, context, jax.random.PRNGKey(0), BuildContext(registry, {"exact_energy": "none"}))
        except ConfigError as exc:
            raise ConfigError(f"{owner}: rule {name!r}: {exc}") from None
        built.append(rule)
        weights.append(float(weight))
        names.append(name)
    if len(built) == 1:
        return built[0]
    seen: dict[str, int] = {}
    labels = []
    for n in names:  # unique info prefixes
        seen[n] = seen.get(n, 0) + 1
        labels.append(n if names.count(n) == 1 else f"{n}{seen[n]}")
    return MixtureRule(built, weights, labels)


class MetropolisMixture(AbstractMetropolisSampler):
    """Metropolis sampler over any registered rules, alone or mixed with weights.

    Each step of each chain draws one of `rules` with probability proportional
    to its weight and makes that rule's move (`MixtureRule`). Combine a local
    rule, which explores, with a move that jumps between the modes of `|psi|^2`
    a local rule cannot cross: a global spin flip for a Z2-symmetric state, a
    multi-spin flip. `nqs list rule` lists the rules; each takes its own fields
    in its table.

    **Arguments:**

    - `space`: the configuration space.
    - `rules`: list of rule names or tables `{name = "...", weight = w, ...}`
      (weight default 1), or rule objects from Python.
    - `lattice`: handed to rules that use bonds (`exchange`); from the config.
    - `n_samples`, `n_chains`, `n_discard_per_chain`, `sweep_size`,
      `n_thermalize`: as for every Metropolis sampler (`MetropolisSampler`).
    - `registry`: where rule names are looked up (a config passes its own; default
      `nqs_core.get_registry()`).

    **Example:**

    ```toml
    [sampler]
    name = "metropolis"
    rules = [ { name = "local", weight = 0.9 }, { name = "global_flip", weight = 0.1 } ]
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
        rules: list,
        lattice: Any = None,
        n_samples: int = 1024,
        n_chains: int = 16,
        n_discard_per_chain: int | None = None,
        sweep_size: int | None = None,
        n_thermalize: int = 20,
        registry: Registry | None = None,
    ):
        if not isinstance(space, AbstractSpace):
            raise TypeError(f"metropolis needs a space (AbstractSpace), got {type(space).__name__}")
        self.space = space
        self.rule = rules_from_spec("metropolis", space, rules, lattice, registry)
        (
            self.n_samples,
            self.n_chains,
            self.n_discard_per_chain,
            self.sweep_size,
            self.n_thermalize,
        ) = metropolis_counts(space, n_samples, n_chains, n_discard_per_chain, sweep_size, n_thermalize)
