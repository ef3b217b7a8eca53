"""Issue 15 fix 5: the plugin's dependencies install under strict hash checking, and the editor's Python is checked."""
from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from contract.errors import UserError
from unreal_bridge.unreal import install_plugin as installer
from unreal_bridge.unreal import requirements
from unreal_bridge.unreal.python_env import PROTOBUF_GENCODE, BridgeEnvironmentError, check_runtime, prefer_plugin_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_plugin_requirement_is_pinned_and_hashed_and_matches_the_lock():
    assert requirements.check() == []
    lines = requirements.descriptor_lines(json.loads(requirements.DESCRIPTOR.read_text()))
    names = {pin.name for pin in requirements.parse_lock(requirements.LOCK.read_text())}
    # Direct and transitive: what the bridge imports and what those need.
    assert {"grpcio", "protobuf", "numpy", "pydantic", "pydantic-core", "typing-extensions", "pillow"} <= names
    for line in lines:
        assert re.match(r"^[a-z0-9-]+==[^ ]+ ", line), line
        assert " --hash=sha256:" in line, line


def test_the_checker_refuses_ranges_and_missing_hashes():
    with pytest.raises(ValueError, match="not pinned"):
        requirements.parse_lock("grpcio>=1.85 --hash=sha256:" + "0" * 64)
    with pytest.raises(ValueError, match="no valid --hash"):
        requirements.parse_lock("grpcio==1.85.3")


def test_the_locked_protobuf_runs_the_checked_in_gencode():
    gencode = (ROOT / "unreal_bridge/protos/worldloom/render/v1/render_pb2.py").read_text()
    version = tuple(int(part) for part in re.search(r"Protobuf Python Version: ([\d.]+)", gencode).group(1).split("."))
    assert version == PROTOBUF_GENCODE
    pin = {p.name: p for p in requirements.parse_lock(requirements.LOCK.read_text())}["protobuf"]
    assert tuple(int(part) for part in pin.version.split(".")) >= PROTOBUF_GENCODE


def test_check_runtime_names_the_fix():
    check_runtime()  # this interpreter is fine
    with pytest.raises(BridgeEnvironmentError, match=r"Python 3\.9.*5\.4 or later"):
        check_runtime(version_info=(3, 9, 13))
    with pytest.raises(BridgeEnvironmentError, match=r"protobuf 4\.24\.0 .*PythonFoundationPackages.*--wheels"):
        check_runtime(protobuf_version="4.24.0", protobuf_file="/Engine/Plugins/PythonFoundationPackages/google/protobuf")


def test_the_plugin_packages_go_first_on_sys_path(tmp_path):
    content = tmp_path / "Plugin" / "Content" / "Python"
    module = content / "Lib" / "site-packages" / "unreal_bridge" / "unreal" / "python_env.py"
    (content / "Win64" / "Lib" / "site-packages").mkdir(parents=True)
    module.parent.mkdir(parents=True)
    path = ["/engine/site-packages", str(content / "Lib" / "site-packages")]
    prefer_plugin_packages(module, path)
    assert path == [str(content / "Win64" / "Lib" / "site-packages"), str(content / "Lib" / "site-packages"), "/engine/site-packages"]


def _wheel(folder: Path, name: str, version: str, module: str) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{module}/__init__.py", f"VERSION = {version!r}\n")
    return path


def test_vendored_wheels_are_hash_checked_and_replace_the_pip_install(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    good = _wheel(wheels, "tinypkg", "1.0", "tinypkg")
    digest = "sha256:" + hashlib.sha256(good.read_bytes()).hexdigest()
    lock = [requirements.Pin("tinypkg", "1.0", "", (digest,)), requirements.Pin("winonly", "2.0", "sys_platform == 'win32'", (digest,))]
    monkeypatch.setattr(installer, "parse_lock", lambda text: lock)
    (tmp_path / "Proj.uproject").write_text("{}")
    plugin = installer.install(tmp_path, wheels=wheels, platform="Linux")
    assert (plugin / "Content/Python/Linux/Lib/site-packages/tinypkg/__init__.py").is_file()
    assert "PythonRequirements" not in json.loads((plugin / "WorldloomBridge.uplugin").read_text())

    tampered = tmp_path / "tampered"
    tampered.mkdir()
    _wheel(tampered, "tinypkg", "1.0", "tinypkg_other")
    with pytest.raises(UserError, match="does not match any hash"):
        installer.install(tmp_path, wheels=tampered, platform="Linux", force=True)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    _wheel(wrong, "tinypkg", "0.9", "tinypkg")
    with pytest.raises(UserError, match="the lock pins 1.0"):
        installer.install(tmp_path, wheels=wrong, platform="Linux", force=True)
    monkeypatch.setattr(installer, "parse_lock", lambda text: [*lock, requirements.Pin("needed", "3.0", "", (digest,))])
    with pytest.raises(UserError, match="no wheel for needed"):
        installer.install(tmp_path, wheels=wheels, platform="Linux", force=True)
