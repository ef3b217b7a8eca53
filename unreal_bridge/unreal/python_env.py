"""Check the editor's embedded Python before the bridge imports gRPC and its generated code.

Two facts make this necessary (issue 15):

- UE 5.3 embeds Python 3.9, where `concurrent.futures.TimeoutError` is not the builtin
  `TimeoutError`; worldloom itself needs 3.11 (UE 5.4 and later embed 3.11).
- The engine can bring its own packages: Epic's PythonFoundationPackages plugin pins
  `protobuf==4.24.0` (and an old numpy), and Python imports a package once per process. The
  bridge's generated code (unreal_bridge/protos) checks at import that the protobuf runtime is
  at least the version that generated it, so an engine protobuf first on `sys.path` fails there.

Resolution: the plugin vendors its wheels (install_plugin --wheels puts them in
`Content/Python/<Platform>/Lib/site-packages`), `prefer_plugin_packages` moves the plugin's
folders to the front of `sys.path` before anything imports protobuf, and `check_runtime` says
in one line what is wrong if another protobuf was already imported.
"""
from __future__ import annotations

import sys
from pathlib import Path

MIN_PYTHON = (3, 11)
# The version of protoc that generated unreal_bridge/protos (its "Protobuf Python Version"); the
# runtime must be at least this. tests/test_unreal_python_env.py keeps it equal to the gencode.
PROTOBUF_GENCODE = (7, 35, 1)
PLATFORMS = ("Win64", "Linux", "Mac")


class BridgeEnvironmentError(RuntimeError):
    """The editor's Python cannot run the bridge; the message names the fix."""


def plugin_package_dirs(startup_file: Path) -> list[Path]:
    """The plugin's site-packages folders, if this file runs from an installed plugin."""
    # <Plugin>/Content/Python/Lib/site-packages/unreal_bridge/unreal/python_env.py
    parents = Path(startup_file).resolve().parents
    if len(parents) < 5:
        return []
    content_python = parents[4]
    candidates = [content_python / platform / "Lib" / "site-packages" for platform in PLATFORMS]
    candidates.append(content_python / "Lib" / "site-packages")
    return [path for path in candidates if path.is_dir()]


def prefer_plugin_packages(startup_file: Path = Path(__file__), path: list[str] | None = None) -> list[str]:
    """Put the plugin's own packages first on sys.path (only matters before protobuf is imported)."""
    path = sys.path if path is None else path
    mine = [str(directory) for directory in plugin_package_dirs(startup_file)]
    path[:] = mine + [entry for entry in path if entry not in mine]
    return mine


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_runtime(version_info=sys.version_info, protobuf_version: str | None = None, protobuf_file: str = "") -> None:
    """Raise BridgeEnvironmentError naming the fix if this Python cannot run the bridge."""
    if tuple(version_info[:2]) < MIN_PYTHON:
        raise BridgeEnvironmentError(
            f"the editor embeds Python {version_info[0]}.{version_info[1]}; the worldloom bridge needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} (Unreal Engine 5.4 or later)"
        )
    if protobuf_version is None:
        import google.protobuf

        protobuf_version, protobuf_file = google.protobuf.__version__, str(getattr(google.protobuf, "__file__", ""))
    if _version_tuple(protobuf_version) < PROTOBUF_GENCODE:
        wanted = ".".join(map(str, PROTOBUF_GENCODE))
        raise BridgeEnvironmentError(
            f"protobuf {protobuf_version} is loaded from {protobuf_file or '?'} but the bridge needs >= {wanted}; "
            "another plugin (e.g. PythonFoundationPackages) imported its own protobuf first: reinstall the bridge "
            "with `install_plugin --wheels` so its packages come first, or disable that plugin in this project"
        )
