"""Lazy loading: `import nqs_core`, the plugin registration and `nqs list` import no
model (and no jax); components registered as "module:Name" import on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

import nqs_core
from nqs_core import Registry, RegistryError, hookimpl, lazy_exports


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_registry_and_summaries_import_no_jax():
    # every built-in plugin registers references; listing them reads docstrings from source
    out = _run(
        """
        import sys
        import nqs_core
        reg = nqs_core.get_registry()
        assert not reg.failures, [f.error for f in reg.failures]
        summaries = [e.summary for e in reg.entries()]
        assert all(summaries), [e.name for e in reg.entries() if not e.summary]
        heavy = sorted(m for m in ("jax", "equinox", "optax", "scipy", "matplotlib", "kfac_jax") if m in sys.modules)
        print(len(summaries), heavy)
        """
    )
    n, heavy = out.split(" ", 1)
    assert int(n) > 40
    assert heavy == "[]"


def test_nqs_list_imports_no_jax():
    out = _run(
        """
        import contextlib, io, sys
        sys.argv = ["nqs", "list"]
        from nqs_cli import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                main()
            except SystemExit as exc:
                assert exc.code in (0, None), exc.code
        assert "metropolis_local" in buf.getvalue()
        print("jax" in sys.modules)
        """
    )
    assert out == "False"


def test_source_summaries_equal_the_imported_ones():
    # the summary read from the source without importing equals the docstring's
    # once the component is imported (a fresh registry, so nothing is loaded yet)
    reg = nqs_core.load_registry(autoload=False)
    lazy = [e for e in reg.entries() if not e.loaded]
    assert len(lazy) > 40
    static = {(e.kind, e.name): e.summary for e in lazy}
    for e in lazy:
        e.obj  # import
        assert e.loaded
        assert e.summary == static[(e.kind, e.name)], (e.kind, e.name)


def test_float64_without_touching_a_component():
    out = _run(
        """
        import nqs_core
        import jax.numpy as jnp
        print(jnp.ones(1).dtype)
        """
    )
    assert out == "float64"


def _plugin(components):
    @hookimpl
    def nqs_register(registry):
        for kind, name, obj in components:
            registry.add(kind, name, obj)

    return types.SimpleNamespace(nqs_register=nqs_register)


def test_reference_imports_on_first_use():
    reg = Registry()
    reg.register_plugin(_plugin([("optimizer", "my_sgd", "optax:sgd")]), name="mine")
    entry = reg.get("optimizer", "my_sgd")
    assert entry.reference == "optax:sgd"
    import optax

    assert entry.obj is optax.sgd
    assert entry.loaded


def test_malformed_reference_is_refused_at_registration():
    reg = Registry()
    reg.register_plugin(_plugin([("ansatz", "bad", "no_colon_here")]), name="broken")
    assert reg.names("ansatz") == []
    assert "is not of the form 'package.module:Name'" in reg.failures[0].error


@pytest.mark.parametrize(
    "reference, cause",
    [("nqs_no_such_module:Thing", "ModuleNotFoundError"), ("nqs_core._stats:NoSuchName", "AttributeError")],
)
def test_broken_reference_is_one_error_naming_the_plugin(reference, cause):
    reg = Registry()
    reg.register_plugin(_plugin([("ansatz", "ghost", reference)]), name="haunted")
    entry = reg.get("ansatz", "ghost")  # registering does not import
    with pytest.raises(RegistryError) as exc:
        entry.obj
    msg = str(exc.value)
    assert "ansatz 'ghost' of plugin 'haunted' cannot be imported" in msg and cause in msg
    assert "\n" not in msg
    assert entry.summary.startswith("(cannot be imported: ")


def test_module_raising_systemexit_is_a_registry_error(tmp_path, monkeypatch):
    (tmp_path / "nqs_exiting_component.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    reg.register_plugin(_plugin([("ansatz", "quitter", "nqs_exiting_component:Net")]), name="quitter")
    with pytest.raises(RegistryError, match="SystemExit: 3"):
        reg.get("ansatz", "quitter").obj


def test_lazy_exports(tmp_path, monkeypatch):
    pkg = tmp_path / "nqs_lazy_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from nqs_core import lazy_exports\n"
        "__getattr__, __dir__, __all__ = lazy_exports(__name__, {'._a': ['A', 'f']}, submodules=['sub'])\n"
    )
    (pkg / "_a.py").write_text("class A:\n    pass\n\ndef f():\n    return 7\n")
    (pkg / "sub.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import nqs_lazy_demo

    assert "nqs_lazy_demo._a" not in sys.modules
    assert nqs_lazy_demo.__all__ == ["A", "f", "sub"]
    assert {"A", "f", "sub"} <= set(dir(nqs_lazy_demo))
    from nqs_lazy_demo import f

    assert f() == 7 and "nqs_lazy_demo._a" in sys.modules
    assert nqs_lazy_demo.sub.X == 1
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        nqs_lazy_demo.nope
    with pytest.raises(ValueError, match="exported by both"):
        lazy_exports("x", {"._a": ["A"], "._b": ["A"]})


def test_doctor_names_a_component_that_cannot_be_imported(monkeypatch):
    from nqs_cli import _doctor
    from nqs_core import _registry

    reg = nqs_core.load_registry(autoload=False)
    reg.register_plugin(_plugin([("ansatz", "ghost", "nqs_no_such_module:Thing")]), name="haunted")
    monkeypatch.setattr(_registry, "_DEFAULT", reg)
    lines = _doctor.report()
    row = next(line for line in lines if line.startswith("  haunted"))
    assert "BROKEN" in row and "1 cannot be imported" in row
    detail = lines[lines.index(row) + 1]
    assert "ansatz 'ghost' of plugin 'haunted' cannot be imported" in detail and "ModuleNotFoundError" in detail
    assert any(line.startswith("  spins") and " ok " in line for line in lines)
