"""Every engine name the Unreal backend uses is in a checked-in manifest with versions and a reference.

The backend cannot run here; what keeps it honest against the real engine is that each
`unreal.*` name it touches (and each editor property it reads or sets by name) was looked up in
Epic's reference for the engine versions we support, and the manifest says where. Adding an
engine call without an entry fails this test, and so does an entry nothing uses any more.

Names are found with `ast` (not a regex): attribute chains rooted at a variable called `unreal`
(the module is handed in as `unreal`, `self.unreal` or `unreal_module`), up to two levels
(`RenderingLibrary.export_render_target`, `TextureRenderTargetFormat.RTF_RGBA16F`), plus the
string passed to `get_editor_property` / `set_editor_property` (`property:fov_angle`).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unreal_bridge" / "unreal"
MANIFEST = PACKAGE / "api_manifest.json"
SUPPORTED = ("5.4", "5.5")
MODULE_NAMES = {"unreal", "unreal_module"}


def _root_and_chain(node: ast.Attribute) -> tuple[str | None, list[str]]:
    chain = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        chain.append(current.attr)
        current = current.value
    chain.reverse()
    if isinstance(current, ast.Name) and current.id in MODULE_NAMES:
        return current.id, chain
    if isinstance(current, ast.Name) and current.id == "self" and chain and chain[0] in ("unreal", "_unreal"):
        return "self.unreal", chain[1:]
    return None, chain


def engine_names_in(source: str) -> set[str]:
    tree = ast.parse(source)
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            root, chain = _root_and_chain(node)
            if root is not None and chain:
                names.add(".".join(chain[:2]))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get_editor_property", "set_editor_property")
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(f"property:{node.args[0].value}")
    return names


def used_engine_names() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in engine_names_in(path.read_text()):
            used.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return used


def load_manifest() -> dict[str, dict]:
    entries = json.loads(MANIFEST.read_text())["names"]
    return {entry["name"]: entry for entry in entries}


def test_the_collector_finds_module_chains_properties_and_ignores_the_rest():
    source = """
def f(unreal, component, self=None):
    unreal.RenderingLibrary.export_render_target(world, target, "d", "f")
    x = unreal.TextureRenderTargetFormat.RTF_RGBA16F
    unreal.log("hi")
    self.unreal.SystemLibrary.get_engine_version()
    component.set_editor_property("fov_angle", 90.0)
    component.capture_scene()
    other.RenderingLibrary.read_render_target(None, None)
"""
    assert engine_names_in(source) == {
        "RenderingLibrary.export_render_target", "TextureRenderTargetFormat.RTF_RGBA16F", "log",
        "SystemLibrary.get_engine_version", "property:fov_angle",
    }


def test_every_engine_name_the_backend_uses_has_versions_and_a_reference():
    used, manifest = used_engine_names(), load_manifest()
    missing = {name: where for name, where in used.items() if name not in manifest}
    assert not missing, f"engine names without a manifest entry (add them to {MANIFEST.name} with a reference): {missing}"
    for name in used:
        entry = manifest[name]
        assert entry.get("reference", "").startswith(("https://", "engine source:")), (name, entry)
        assert entry.get("checked"), (name, "say how it was checked")
        if entry.get("status") == "unverified":  # named in docs/unreal.md's first-run checklist
            assert entry.get("verified_for") == [], (name, "an unverified name claims no versions")
        else:
            assert set(SUPPORTED) <= set(entry.get("verified_for", [])), (name, entry.get("verified_for"))


def test_the_manifest_has_no_stale_entries():
    stale = sorted(set(load_manifest()) - set(used_engine_names()))
    assert not stale, f"manifest entries nothing uses any more: {stale}"


@pytest.mark.parametrize("snippet, name", [
    ("def f(unreal):\n    unreal.RenderingLibrary.read_render_target_raw_pixel_area(None, None, 0, 0, 1, 1)\n",
     "RenderingLibrary.read_render_target_raw_pixel_area"),
    ("def f(c):\n    c.set_editor_property('made_up_property', 1)\n", "property:made_up_property"),
])
def test_a_new_engine_call_without_an_entry_is_caught(snippet, name):
    assert name in engine_names_in(snippet)
    assert name not in load_manifest()
