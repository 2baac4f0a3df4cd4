"""The pieces of a sweep that run no physics: ranges, product / zip, point names,
`--set` into arrays of tables, and the refusals (issue 29 item 1)."""

import pytest

from nqs_core import ConfigError, apply_overrides, sweep_spec
from nqs_core._sweep import parse_range, split_sweep_sets

BASE = {
    "lattice": {"name": "chain", "length": 4, "extent": [4]},
    "system": {"name": "spin_model", "terms": [{"op": "Sz Sz", "coupling": 1.0}, {"op": "Sx", "coupling": 0.5}]},
}


def test_range_is_inclusive_like_linspace():
    assert parse_range("0.2:2.0:10") == [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]  # no 0.6000000000000001
    assert parse_range("0.2:2.0:10")[-1] == 2.0
    assert parse_range("8:16:5") == [8, 10, 12, 14, 16] and all(isinstance(v, int) for v in parse_range("8:16:5"))
    assert parse_range("0:1:3") == [0.0, 0.5, 1.0]
    assert parse_range("1.5:1.5:1") == [1.5]
    assert parse_range("-1e-1:1e-1:3") == [-0.1, 0.0, 0.1]
    assert parse_range("0.5") is None and parse_range("a:b:3") is None and parse_range("1:2") is None
    with pytest.raises(ConfigError, match="count must be an integer >= 1"):
        parse_range("0:1:0")


def test_set_reaches_into_arrays_of_tables():
    out = apply_overrides(BASE, ["system.terms.1.coupling=0.25"])
    assert out["system"]["terms"][1] == {"op": "Sx", "coupling": 0.25}
    assert BASE["system"]["terms"][1]["coupling"] == 0.5  # the input is not changed
    assert apply_overrides(BASE, ["lattice.extent.0=6"])["lattice"]["extent"] == [6]
    with pytest.raises(ConfigError, match=r"index 2 is out of range: system.terms has 2 entries \(indices 0 to 1\)"):
        apply_overrides(BASE, ["system.terms.2.coupling=1"])
    with pytest.raises(ConfigError, match="system.terms is an array"):
        apply_overrides(BASE, ["system.terms.first.coupling=1"])
    with pytest.raises(ConfigError, match=r"system.name is a value \('spin_model'\), not a table or an array"):
        apply_overrides(BASE, ["system.name.x=1"])


def test_product_and_zip_and_point_names():
    spec = sweep_spec({**BASE, "sweep": {"system": {"terms": {"1": {"coupling": "0:1:3"}}}, "lattice": {"length": [4, 6]}}})
    assert spec.keys == ["system.terms.1.coupling", "lattice.length"]
    assert spec.points() == [{"system.terms.1.coupling": c, "lattice.length": n} for c in (0.0, 0.5, 1.0) for n in (4, 6)]
    assert spec.point_name(3, spec.points()[3]) == "003_system.terms.1.coupling=0.5_lattice.length=6"
    assert spec.point_config(spec.points()[3])["system"]["terms"][1]["coupling"] == 0.5
    z = sweep_spec({**BASE, "sweep": {"mode": "zip", "system.terms.0.coupling": [1, 2], "lattice.length": [4, 6]}})
    assert z.points() == [{"system.terms.0.coupling": 1, "lattice.length": 4}, {"system.terms.0.coupling": 2, "lattice.length": 6}]
    r = sweep_spec({**BASE, "sweep": {"system": {"h": {"start": 0.0, "stop": 1.0, "count": 5}}}})
    assert r.points()[-1] == {"system.h": 1.0} and len(r.points()) == 5
    with pytest.raises(ConfigError, match=r"zip.*as many values \(a.b: 2, c.d: 3\)"):
        sweep_spec({"sweep": {"mode": "zip", "a.b": [1, 2], "c.d": [1, 2, 3]}})
    with pytest.raises(ConfigError, match="mode = 'grid'"):
        sweep_spec({"sweep": {"mode": "grid", "a.b": [1, 2]}})
    with pytest.raises(ConfigError, match="sweeps nothing"):
        sweep_spec(BASE)
    with pytest.raises(ConfigError, match="sweep field 'system.terms.5.coupling': index 5 is out of range"):
        sweep_spec({**BASE, "sweep": {"system.terms.5.coupling": [1, 2]}})


def test_command_line_axes_and_plain_overrides():
    plain, axes = split_sweep_sets(BASE, ["system.h=0.2:2.0:10", "system.J=[1, 2]", "lattice.extent=[6]", "run.n_steps=5"])
    assert [k for k, _ in axes] == ["system.h", "system.J"] and len(axes[0][1]) == 10 and axes[1][1] == [1, 2]
    assert plain == ["lattice.extent=[6]", "run.n_steps=5"]  # a list-valued field keeps its list
    spec = sweep_spec({**BASE, "sweep": {"system.h": [0.1, 0.2], "warm_start": True}}, ["system.h=[0.3]", "run.n_steps=5"])
    assert spec.points() == [{"system.h": 0.3}] and spec.base["run"]["n_steps"] == 5 and spec.warm_start


def test_summary_of_finished_failed_and_pending_points(tmp_path):
    """Statuses, exit code and columns from the points' result.json (written here; no physics runs)."""
    import csv
    import json

    from nqs_core import SweepResult, summary_rows
    from nqs_core._sweep import _write_summary

    spec = sweep_spec({**BASE, "sweep": {"system.h": [0.1, 0.2, 0.3, 0.4]}})
    names = [spec.point_name(i, p) for i, p in enumerate(spec.points())]
    results = [
        {"step": 5, "energy": {"mean": -1.0, "error": 0.1, "variance": 0.2}, "exact_energy": -1.05, "v_score": 0.01,
         "stop_reason": None, "observables": {"mz": {"mean": 0.5, "error": 0.01}, "czz": {"mean": [1.0, 0.5], "error": [0, 0]}}},
        {"step": 3, "stop_reason": "a non-finite energy at step 3"},
        {"step": 5, "energy": {"mean": -2.0, "error": 0.1, "variance": 0.2}, "stop_reason": None,
         "exact_check": {"status": "disagrees"}},
    ]
    for name, result in zip(names, results):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(result))
    rows = summary_rows(spec, tmp_path)
    assert [r["status"] for r in rows] == ["ok", "stopped", "check_failed", "pending"]
    assert [r["exit_code"] for r in rows] == [0, 3, 4, None]
    assert rows[0]["v_score"] == 0.01 and rows[1]["v_score"] is None and rows[0]["energy_error"] == 0.1
    assert SweepResult(tmp_path, rows).exit_code == 4 and len(SweepResult(tmp_path, rows).failed) == 2
    _write_summary(spec, tmp_path, spec.points(), names, [{**r, "status": s} for r, s in zip(results, ["ok", "stopped", "check_failed"])] + [None])
    with open(tmp_path / "summary.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0])[:4] == ["index", "point", "system.h", "status"]
    assert table[0]["mz"] == "0.5" and table[0]["mz_error"] == "0.01" and "czz" not in table[0]  # arrays: JSON only
    assert table[3]["status"] == "pending" and table[3]["energy"] == ""
    assert json.loads((tmp_path / "summary.json").read_text())["points"][0]["observables"]["czz"]["mean"] == [1.0, 0.5]


def test_run_of_a_config_with_a_sweep_table_points_to_nqs_sweep():
    from nqs_core import build

    config = {**BASE, "sweep": {"system.terms.1.coupling": [0.5, 1.0]}}
    with pytest.raises(ConfigError, match="nqs sweep CONFIG"):
        build(config)
