"""Regenerate the committed Python code for the render protocol from its `.proto`.

Run as `make proto` (``python -m unreal_bridge.protos.generate``). The generated
``render_pb2.py`` / ``render_pb2_grpc.py`` are committed beside the `.proto` so that the
package works without grpcio-tools (a runtime install, or the Python inside Unreal Engine,
has only grpcio + protobuf). ``--check`` regenerates into a temporary folder and fails when
the committed files differ: the test suite runs it, so an edited `.proto` without
regenerated code cannot land.

Why the import rewrite: protoc names the generated module after the proto path
(``worldloom/render/v1/render.proto`` -> ``import worldloom.render.v1.render_pb2``), which
would need a top-level ``worldloom`` package. The proto keeps its clean path (it is what
server reflection shows to stock tools) and the one import line is rewritten to the real
package path.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = ("worldloom/render/v1/render.proto",)
PACKAGE_PREFIX = "unreal_bridge.protos."
INIT_DOC = '"""Generated protocol package; see unreal_bridge/protos/generate.py."""\n'


def _rewrite_imports(text: str) -> str:
    """Point generated cross-module imports at the real package path."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("from worldloom.") or line.startswith("import worldloom."):
            line = line.replace("worldloom.", PACKAGE_PREFIX + "worldloom.", 1)
        lines.append(line)
    return "".join(lines)


def generate(out_root: Path) -> list[Path]:
    """Compile every proto into `out_root` (same relative layout); return the files written."""
    import grpc_tools
    from grpc_tools import protoc  # dev-only dependency, imported only when regenerating

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    for proto in PROTO_FILES:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{well_known}",
                f"--python_out={out_root}",
                f"--pyi_out={out_root}",
                f"--grpc_python_out={out_root}",
                proto,
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {PROTO_ROOT / proto} (exit {status})")
    written: list[Path] = []
    for proto in PROTO_FILES:
        stem = Path(proto).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            path = out_root / f"{stem}{suffix}"
            path.write_text(_rewrite_imports(path.read_text()))
            written.append(path)
        # Make every folder on the way an importable package.
        folder = (out_root / proto).parent
        while folder != out_root:
            init = folder / "__init__.py"
            init.write_text(INIT_DOC)
            written.append(init)
            folder = folder.parent
    return written


def _generator_versions(text: str) -> tuple[str, ...]:
    """The tool versions stamped into a generated file (protoc and grpc plugin)."""
    stamps = []
    for line in text.splitlines():
        if line.startswith("# Protobuf Python Version:") or line.startswith("GRPC_GENERATED_VERSION"):
            stamps.append(line.split(":", 1)[-1].split("=", 1)[-1].strip())
    return tuple(stamps)


def _semantic_fingerprint(path: Path) -> object:
    """What a generated file means, independent of the generator's version and layout.

    `_pb2.py`: the serialized FileDescriptorProto it registers (every message, field and rpc).
    `_pb2_grpc.py`: the rpc method paths it binds. Other files: their text.
    """
    import ast

    text = path.read_text()
    if path.name.endswith("_pb2.py") or path.name.endswith("_pb2_grpc.py"):
        constants = [
            node.value
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, (bytes, str))
        ]
        if path.name.endswith("_pb2.py"):
            return [value for value in constants if isinstance(value, bytes)]
        return sorted({value for value in constants if isinstance(value, str) and value.startswith("/worldloom.")})
    if path.name.endswith(".pyi"):
        return [line.strip() for line in text.splitlines() if line.startswith("class ") or "__slots__" in line]
    return text


def stale_files() -> tuple[list[str], list[str]]:
    """Compare the committed code with a fresh generation.

    Returns `(stale, cosmetic)`: `stale` lists files that are missing or mean something
    different from the `.proto` (always an error); `cosmetic` lists files that mean the same but
    differ in bytes because a different grpcio-tools version produced them (a note, not an error,
    so that a newer tool in a fresh environment does not fail the suite). When the versions
    are equal, any byte difference is stale (a hand edit).
    """
    stale: list[str] = []
    cosmetic: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        same_tools = all(
            (PROTO_ROOT / path.relative_to(tmp)).is_file()
            and _generator_versions((PROTO_ROOT / path.relative_to(tmp)).read_text())
            == _generator_versions(path.read_text())
            for path in fresh
        )
        for path in fresh:
            relative = str(path.relative_to(tmp))
            committed = PROTO_ROOT / relative
            if not committed.is_file():
                stale.append(relative)
                continue
            if committed.read_bytes() == path.read_bytes():
                continue
            if same_tools or _semantic_fingerprint(committed) != _semantic_fingerprint(path):
                stale.append(relative)
            else:
                cosmetic.append(relative)
    return stale, cosmetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale, cosmetic = stale_files()
        if cosmetic:
            print(f"note: {', '.join(cosmetic)} were produced by another grpcio-tools version (same content)")
        if stale:
            print(f"generated protocol code is out of date: {', '.join(stale)}; run `make proto`", file=sys.stderr)
            return 1
        print("generated protocol code is up to date")
        return 0
    for path in generate(PROTO_ROOT):
        print(f"wrote {path.relative_to(PROTO_ROOT.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
