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
    (`16`, `0.5`, `true`, `"text"`, `[1, 2]`), else taken as a plain string."""
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
        node = config
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a table")
        node[keys[-1]] = value
    return config


def resolved_toml(calc: Calculation) -> str:
    """The resolved config of `calc` (every default filled in) as TOML text, as
    written to a run directory's `config.toml` (`None` values left out)."""
    def clean(d):
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(clean(calc.config))
