"""Builders and the text form of the operator language: the spin-1/2 and
Pauli operators on one site, and `parse`, which reads the TOML form
(`"SxSx + SySy + 0.5 SzSz"`) for any local space."""

from __future__ import annotations

import re

from ._operator import Operator, _site, identity, local_operator

# -- spin-1/2 building blocks --------------------------------------------------------------


def _one(i, a: int, b: int, c) -> Operator:
    return Operator({((_site(i), a, b),): c})


def X(i) -> Operator:
    """Pauli `sigma^x` on site `i`."""
    return _one(i, 1, 0, 1.0)


def Z(i) -> Operator:
    """Pauli `sigma^z` on site `i` (`+1` on up, `-1` on down)."""
    return _one(i, 0, 1, 1.0)


def Y(i) -> Operator:
    """Pauli `sigma^y = i sigma^x sigma^z` on site `i`."""
    return _one(i, 1, 1, 1j)


def sx(i) -> Operator:
    """`S^x = sigma^x / 2` on site `i`."""
    return X(i) * 0.5


def sy(i) -> Operator:
    """`S^y = sigma^y / 2` on site `i`."""
    return Y(i) * 0.5


def sz(i) -> Operator:
    """`S^z = sigma^z / 2` on site `i`."""
    return Z(i) * 0.5


def sp(i) -> Operator:
    """`S^+ = S^x + i S^y` on site `i` (raises a down spin)."""
    return sx(i) + 1j * sy(i)


def sm(i) -> Operator:
    """`S^- = S^x - i S^y` on site `i` (lowers an up spin)."""
    return sx(i) - 1j * sy(i)



# -- the text form used by TOML -----------------------------------------------------

_SYMBOLS = {"Sx": sx, "Sy": sy, "Sz": sz, "Sp": sp, "Sm": sm, "X": X, "Y": Y, "Z": Z, "I": None}
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?j?)|(?P<sym>S[xyzpm]|[XYZI])(?![a-z])|(?P<op>[-+*]))"
)


def parse(text: str, sites, space=None) -> Operator:
    """The operator written in `text` acting on `sites`.

    Grammar: a sum (`+`, `-`) of products; a product is an optional number
    (`0.5`, `2e-1`, `1j` for imaginary) and optional `*`, followed by symbols
    written next to each other or separated by `*`: `Sx Sy Sz Sp Sm` (spin
    units), `X Y Z` (Pauli) and `I` (identity). The `i`-th symbol acts on
    `sites[i]`, so every product must have `len(sites)` symbols (a bare number
    is a multiple of the identity).

    With a local `space` of dimension `d > 2` (an `nqs_core.AbstractLocalSpace`,
    e.g. spin S), `Sx Sy Sz Sp Sm` are that space's local matrices
    (`space.local_matrix("sx")`, ...), and the Pauli symbols `X Y Z` are refused.

    **Arguments:**

    - `text`: e.g. `"SxSx + SySy + 0.5 SzSz"`.
    - `sites`: the sites, e.g. `(3, 4)`.
    - `space`: optional local space whose local operators the symbols mean
      (default: spin 1/2).

    **Returns:** the `Operator`.
    """
    sites = tuple(_site(s) for s in sites)
    tokens = []
    pos = 0
    text = str(text)
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None:
            word = re.match(r"\s*(S[a-z]|[A-Za-z]+|\S)", text[pos:]).group(1)
            raise ValueError(
                f"unknown operator symbol {word!r} in {text!r}; valid symbols: "
                f"{' '.join(_SYMBOLS)}, numbers, + - *"
            )
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    if not tokens:
        raise ValueError("empty operator string")
    symbols_of = _spin_half_symbol
    d = 2
    if space is not None and space.local_dim != 2:
        symbols_of = _local_symbols(space)
        d = space.local_dim
    total = Operator({}, d)
    i = 0
    while i < len(tokens):
        sign = 1.0
        while i < len(tokens) and tokens[i][0] == "op" and tokens[i][1] in "+-":
            sign = -sign if tokens[i][1] == "-" else sign
            i += 1
        coeff: complex = sign
        if i < len(tokens) and tokens[i][0] == "num":
            coeff = coeff * complex(tokens[i][1])
            i += 1
            if i < len(tokens) and tokens[i] == ("op", "*"):
                i += 1
        symbols = []
        while i < len(tokens) and (tokens[i][0] == "sym" or tokens[i] == ("op", "*")):
            if tokens[i][0] == "sym":
                symbols.append(tokens[i][1])
            i += 1
        if i < len(tokens) and tokens[i][0] != "op":
            raise ValueError(f"cannot read {text!r}: unexpected {tokens[i][1]!r}")
        if symbols and len(symbols) != len(sites):
            raise ValueError(
                f"{''.join(symbols)!r} in {text!r} has {len(symbols)} symbol(s) but acts on "
                f"{len(sites)} site(s) {list(sites)}"
            )
        if not symbols and (i == 0 or tokens[i - 1][0] != "num"):
            raise ValueError(f"cannot read {text!r}: a '+' or '-' without a term")
        product = identity(d)
        for sym, s in zip(symbols, sites):
            if _SYMBOLS[sym] is not None:
                product = product * symbols_of(sym, s)
        total = total + coeff * product
    return total


def _spin_half_symbol(sym: str, site: int) -> Operator:
    return _SYMBOLS[sym](site)


def _local_symbols(space):
    """`(symbol, site) -> Operator` from the local matrices of `space`."""
    names = set(space.local_operator_names)
    cache: dict = {}

    def symbol(sym: str, site: int) -> Operator:
        name = sym.lower()
        if name not in names:
            raise ValueError(
                f"operator symbol {sym!r} is not defined on {space!r} (local dimension {space.local_dim}); "
                f"valid symbols there: {' '.join(n[0].upper() + n[1:] for n in sorted(names))}, I"
            )
        if name not in cache:
            cache[name] = local_operator(space.local_matrix(name), 0)
        return cache[name].relabel({0: site})

    return symbol
