"""The documentation cannot rot: it builds strictly (every link and anchor resolves),
a broken anchor fails the build, the API reference lists every public protocol and
the component tables list every registered component."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_hooks"))

import nqs_docs  # noqa: E402  (docs/_hooks is not a package)


def _mkdocs(cwd: pathlib.Path, site: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
    )


@pytest.fixture(scope="module")
def docs_copy(tmp_path_factory):
    """mkdocs.yml and docs/ copied beside the package paths the API reference reads."""
    where = tmp_path_factory.mktemp("docs")
    shutil.copy(ROOT / "mkdocs.yml", where / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", where / "docs")
    for name in ("nqs_core", "plugins", "cli"):
        (where / name).symlink_to(ROOT / name)
    return where


def test_docs_build_strict(tmp_path):
    out = _mkdocs(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert 'id="nqs_core._ansatz.AbstractAnsatz"' in api


def test_broken_anchor_fails_the_build(docs_copy, tmp_path):
    page = docs_copy / "docs" / "concepts.md"
    page.write_text(page.read_text() + "\nSee [nowhere](references.md#no-such-anchor).\n")
    out = _mkdocs(docs_copy, tmp_path / "site")
    assert out.returncode != 0
    assert "no-such-anchor" in out.stderr


def test_api_reference_lists_every_public_protocol():
    import nqs_core

    listed = {name for names in nqs_docs.public_names().values() for name in names}
    protocols = {n for n in nqs_core.__all__ if n.startswith("Abstract")}
    assert len(protocols) >= 20
    assert protocols <= listed
    text = nqs_docs.api_reference()
    for name in protocols:
        assert f".{name}\n" in text


def test_component_tables_list_every_registered_component():
    from nqs_core._registry import load_registry

    table = nqs_docs.component_table()
    entries = load_registry(autoload=False).entries()
    assert len(entries) > 30
    for e in entries:
        assert f"| `{e.kind}` | `{e.name}` | `{e.plugin}` |" in table
    spins = nqs_docs.component_table("spins", "components/spins.md")
    assert "| `space` | `spin_half` | `spins` |" in spins and "`networks`" not in spins
    assert "| `lattice` | `chain` | `core` |" in nqs_docs.component_table("core")
