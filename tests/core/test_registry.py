import importlib.metadata
import sys
import textwrap

import pytest

from nqs_core import Registry, RegistryError, hookimpl, load_registry


def test_builtins_load_through_entry_points():
    reg = load_registry()
    assert not reg.failures, reg.failures
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="nqs.plugins")}
    for name in ("core", "spins", "networks", "optim"):
        assert name in eps and name in reg.plugins
    assert reg.get("ansatz", "rbm").plugin == "networks"
    assert reg.get("system", "ising").plugin == "spins"
    assert reg.get("preconditioner", "sr").plugin == "optim"
    assert reg.get("driver", "vmc").plugin == "core"


def test_duplicate_names_rejected_and_provider_recorded():
    reg = Registry()

    class A:
        @staticmethod
        @hookimpl
        def nqs_register(registry):
            registry.add("ansatz", "thing", object)

    class B:
        @staticmethod
        @hookimpl
        def nqs_register(registry):
            registry.add("ansatz", "thing", dict)

    reg.register_plugin(A, "plugin_a")
    reg.register_plugin(B, "plugin_b")
    assert reg.get("ansatz", "thing").plugin == "plugin_a"
    assert reg.get("ansatz", "thing").obj is object
    assert len(reg.failures) == 1
    assert reg.failures[0].plugin == "plugin_b"
    assert "already registered by plugin 'plugin_a'" in reg.failures[0].error


def test_unknown_name_lists_valid_names():
    reg = load_registry()
    with pytest.raises(RegistryError) as exc:
        reg.get("ansatz", "rmb")
    msg = str(exc.value)
    assert "unknown ansatz 'rmb'" in msg and "rbm" in msg and "mlp" in msg


def test_alias_warns_and_gives_the_new_component():
    """An old name (`registry.alias`) resolves to the renamed component with a
    FutureWarning that names the new one; it is not listed as a component."""
    reg = Registry()

    class Old:
        @staticmethod
        @hookimpl
        def nqs_register(registry):
            registry.alias("ansatz", "old_thing", "thing")  # before the target exists
            registry.add("ansatz", "thing", dict)

    reg.register_plugin(Old, "renaming")
    assert not reg.failures
    with pytest.warns(FutureWarning, match="ansatz 'old_thing' is an old name for 'thing'"):
        entry = reg.get("ansatz", "old_thing")
    assert entry.obj is dict and entry.name == "thing"
    with pytest.warns(FutureWarning, match="old name"):
        assert reg.find("old_thing") == [entry]
    assert reg.names("ansatz") == ["thing"] and reg.entries("ansatz") == [entry]
    assert [(a.old, a.new, a.plugin) for a in reg.aliases()] == [("old_thing", "thing", "renaming")]
    with pytest.raises(RegistryError, match="already registered by plugin 'renaming' \\(as an old name of 'thing'\\)"):
        reg.add("ansatz", "old_thing", list)
    with pytest.raises(RegistryError, match="already registered"):
        reg.alias("ansatz", "thing", "other")
    with pytest.raises(RegistryError, match="must be a component's own name"):
        reg.alias("ansatz", "older_thing", "old_thing")
    reg.alias("sampler", "gone", "missing")
    with pytest.raises(RegistryError, match="'gone' is an old name for 'missing', which no loaded plugin provides"):
        reg.get("sampler", "gone")


def test_alias_rolled_back_with_a_broken_plugin():
    reg = Registry()

    class Broken:
        @staticmethod
        @hookimpl
        def nqs_register(registry):
            registry.alias("driver", "old", "vmc")
            raise RuntimeError("broken")

    reg.register_plugin(Broken, "broken")
    assert reg.aliases() == [] and reg.failures[0].plugin == "broken"
    with pytest.raises(RegistryError, match="unknown driver 'old'"):
        reg.get("driver", "old")


def _fake_dist(tmp_path, dist_name, module_name, module_src, ep_name):
    (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(module_src))
    info = tmp_path / f"{dist_name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[nqs.plugins]\n{ep_name} = {module_name}\n")


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for m in [m for m in sys.modules if m.startswith("fake_nqs_")]:
        del sys.modules[m]


def test_broken_plugin_is_reported_and_others_load(on_path, monkeypatch):
    _fake_dist(on_path, "fake-broken", "fake_nqs_broken", "raise RuntimeError('boom at import')\n", "broken")
    _fake_dist(
        on_path,
        "fake-bad-hook",
        "fake_nqs_badhook",
        """
        from nqs_core import hookimpl
        @hookimpl
        def nqs_register(registry):
            raise ValueError('boom in hook')
        """,
        "badhook",
    )
    reg = load_registry()
    failed = {f.plugin: f.error for f in reg.failures}
    assert "boom at import" in failed["broken"]
    assert "boom in hook" in failed["badhook"]
    assert "rbm" in reg.names("ansatz")  # the built-ins still loaded

    monkeypatch.setenv("NQS_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = load_registry()
    assert not reg.failures and "rbm" in reg.names("ansatz")
