"""The compressed evaluation of many nearly equal configurations (Sharir et al. 2022,
Section 3.2): what `VQTransformer.log_psi_connected` runs for the local energies,
and its static capacities (unique slots per stage)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._network import _Net
from ._quantizer import codes as vq_codes, lookup as vq_lookup

_KEY_BITS = 62  # int64 keys of (unique id, code tuple) pairs stay below 2^62


def compressed(net: _Net, ids, capacity):
    """Section 3.2: the same per-token outputs as `net.dense(ids)` for a batch of
    nearly equal inputs, with every per-location operation applied only to the
    unique vectors.

    The hidden state is kept as `(inv, V)`: `V` holds the unique vectors and
    `inv[b * T + t]` points into it. Before the first block a vector is fixed by
    its (position, token) pair; after block `l` by its previous unique vector and
    the code tuple of the quantiser of block `l`. Attention (the location mixer)
    and the quantiser distances are computed densely.

    **Arguments:**

    - `net`: the decoder or encoder.
    - `ids`: token ids `(B, T)`.
    - `capacity`: static number of unique slots per stage (`n_layers + 1`
      ints, or `None` for `B * T`: always enough).

    **Returns:** `(outputs (B, T, n_out), overflow, counts)`: `overflow` is
    True when a stage had more unique vectors than its capacity (the outputs
    are then invalid), `counts` the number of unique vectors per stage.
    """
    b, t = ids.shape
    n = b * t
    sizes = [n] * (net.n_layers + 1) if capacity is None else [min(int(c), n) for c in capacity]
    n_vocab = net.embed.shape[0]
    key = (jnp.arange(t, dtype=jnp.int64)[None, :] * n_vocab + ids.astype(jnp.int64)).reshape(-1)
    uniq, inv, overflow, count = _unique(key, sizes[0])
    counts = [count]
    v = net.embed[uniq % n_vocab] + net.pos[uniq // n_vocab]
    for layer in range(net.n_layers):
        qkv = net.qkv(layer, v)[inv].reshape(b, t, -1)
        a = net.attend(qkv).reshape(n, -1)
        if net.codebook is None:  # no quantiser: the stream is dense from here on
            v = net.post(layer, v[inv], a)
            inv = jnp.arange(n)
            counts.append(jnp.asarray(n))
            continue
        cb = net.codebook[layer]
        idx = vq_codes(a, cb)  # (n, H), dense
        pair, n_keys = inv.astype(jnp.int64), sizes[layer]
        for h in range(cb.shape[0]):  # (unique id, code tuple) as one int64 key
            if (n_keys * cb.shape[1]).bit_length() > _KEY_BITS:
                _, pair, _, _ = _unique(pair, n)
                n_keys = n
            pair = pair * cb.shape[1] + idx[:, h].astype(jnp.int64)
            n_keys *= cb.shape[1]
        uniq, new_inv, over, count = _unique(pair, sizes[layer + 1])
        overflow = overflow | over
        counts.append(count)
        # representative location of each unique pair: its previous id and codes
        first = jnp.zeros((sizes[layer + 1],), jnp.int32).at[new_inv].set(jnp.arange(n, dtype=jnp.int32))
        v = net.post(layer, v[inv[first]], vq_lookup(idx[first], cb))
        inv = new_inv
    if net.has_final:  # unquantised attention: every location differs after it
        a = net.attend(net.final_qkv(v)[inv].reshape(b, t, -1)).reshape(n, -1)
        out = net.head(net.final_post(v[inv], a)).reshape(b, t, -1)
    else:
        out = net.head(v)[inv].reshape(b, t, -1)
    return out, overflow, jnp.stack(counts)


def _unique(key, size):
    """`jnp.unique` with a fixed size, an inverse, an overflow flag and the count."""
    uniq, inv = jnp.unique(key, size=size, return_inverse=True, fill_value=key[0])
    inv = inv.reshape(-1)
    overflow = jnp.any(uniq[inv] != key)
    srt = jnp.sort(key)
    count = 1 + jnp.sum(srt[1:] != srt[:-1])
    return uniq, inv, overflow, count


def _check_capacity(capacity, n_layers, phase_layers):
    if capacity is None:
        return None
    try:
        amp, ph = capacity
        amp = tuple(int(c) for c in amp)
        ph = tuple(int(c) for c in ph)
    except (TypeError, ValueError):
        raise ValueError(
            f"capacity must be None or [[{n_layers + 1} ints], [{phase_layers + 1 if phase_layers else 0} ints]], "
            f"got {capacity!r}"
        ) from None
    if len(amp) != n_layers + 1 or len(ph) != (phase_layers + 1 if phase_layers else 0) or min(amp + ph, default=1) < 1:
        raise ValueError(
            f"capacity needs {n_layers + 1} positive amplitude entries and "
            f"{phase_layers + 1 if phase_layers else 0} phase entries, got {capacity!r}"
        )
    return (amp, ph if phase_layers else None)


def _replace_capacity(model, capacity):
    new = jax.tree_util.tree_map(lambda a: a, model)
    object.__setattr__(new, "capacity", capacity)
    return new
