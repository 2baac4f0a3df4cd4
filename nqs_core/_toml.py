"""TOML I/O of configurations: read files and text, apply `--set` overrides, write the resolved config."""

from __future__ import annotations

import copy
import pathlib
import sys
from typing import Any

import tomli_w

from ._config import Calculation, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_config(path) -> dict[str, Any]:
    """The config dict of the TOML file `path` (else `ConfigError`: missing, a directory, malformed, not text)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"config path is a directory, not a TOML file: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file is not text: {path}") from None


def loads_config(text: str) -> dict[str, Any]:
    """The config dict of TOML `text` (else `ConfigError`)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}") from None


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted `a.b=value` overrides; `value` is read as a TOML value
    (`16`, `0.5`, `true`, `"text"`, `[1, 2]`), else taken as a plain string.
    An integer key indexes an array of tables, counted from 0:
    `system.terms.1.coupling=0.5` sets `coupling` of the second `[[system.terms]]`."""
    config = copy.deepcopy(config)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like table.field=value")
        dotted, raw = item.split("=", 1)
        keys = [k.strip() for k in dotted.strip().split(".") if k.strip()]
        if len(keys) < 2:
            raise ConfigError(f"override {item!r} must name a table and a field, e.g. system.h=0.5")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        set_dotted(config, keys, value, what=f"override {item!r}")
    return config


def set_dotted(config: dict[str, Any], keys: list[str], value: Any, what: str = "override") -> None:
    """Set `config[k0][k1]...[kn] = value` in place: tables are made when
    missing, an integer key indexes an existing array (`ConfigError` for an
    index out of range, or for a key that reaches into a value that is neither
    a table nor an array)."""
    node: Any = config
    path = []
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(path) or "the config"
        if isinstance(node, list):
            if not _is_index(k):
                raise ConfigError(
                    f"{what}: {where} is an array ({len(node)} entries); index it with a number from 0 to "
                    f"{len(node) - 1}, e.g. {where}.0.{keys[-1] if not last else 'field'}"
                )
            j = int(k)
            if j >= len(node):
                raise ConfigError(
                    f"{what}: index {j} is out of range: {where} has {len(node)} entries (indices 0 to {len(node) - 1})"
                )
            if last:
                node[j] = value
            else:
                node = node[j]
        elif isinstance(node, dict):
            if last:
                node[k] = value
            else:
                node = node.setdefault(k, {})
        else:
            raise ConfigError(f"{what}: {where} is a value ({node!r}), not a table or an array; it has no field {k!r}")
        path.append(k)


def _is_index(key: str) -> bool:
    return key.isdigit()


def resolved_toml(calc: Calculation) -> str:
    """The resolved config of `calc` (every default filled in) as TOML text, as
    written to a run directory's `config.toml` (`None` values left out)."""
    def clean(d):
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(clean(calc.config))
