"""`worldloom manifest validate|resolve|schema`: check a manifest, write its resolved clips, export the schema."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from contract.errors import UserError
from contract.manifest.loader import load_manifest
from contract.manifest.packaged import find_manifest
from contract.manifest.resolve import manifest_sha256, resolve_clip, resolve_manifest
from contract.manifest.schema import manifest_json_schema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "manifests" / "schema.json"


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name in the same folder, then rename: a partial file never looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def schema_text() -> str:
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


@click.group("manifest")
def manifest() -> None:
    """Validate and resolve scene manifests (see docs/manifests.md)."""


@manifest.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check FILES (paths, or example names such as quickstart); print one line per valid manifest,
    stop at the first error (file:line: field: problem; fix)."""
    for path in files:
        path = find_manifest(path)
        loaded = load_manifest(path)
        clips = sum(scene.clips for scene in loaded.scenes)
        click.echo(
            f"ok {path}: {loaded.name}, {len(loaded.scenes)} scene(s), {clips} clip(s) of {loaded.output.frames} frames "
            f"at {loaded.output.width}x{loaded.output.height} {loaded.output.fps} fps, manifest sha256 {manifest_sha256(loaded)[:12]}"
        )


@manifest.command("resolve")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write JSON here (atomically) instead of stdout")
@click.option("--scene", help="resolve only this scene's clip (with --clip)")
@click.option("--clip", "clip_index", type=int, default=0, show_default=True, help="clip index within --scene")
def resolve(file: Path, out: Path | None, scene: str | None, clip_index: int) -> None:
    """Resolve FILE (a path or an example name): every random draw written out, per-frame actions and poses, sha256 per clip."""
    file = find_manifest(file)
    if scene is not None:
        payload = resolve_clip(load_manifest(file), scene, clip_index)
        summary = f"resolved {payload['key']} sha256 {payload['sha256'][:12]}"
    else:
        resolved = resolve_manifest(file)
        payload = resolved.to_json()
        summary = f"resolved {len(resolved.clips)} clip(s) of {resolved.manifest.name}, sha256 {resolved.sha256[:12]}"
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            write_atomic(out, text)
        except OSError as error:
            raise UserError(f"{out}: cannot write ({error.strerror}); fix: choose a writable --out path") from None
        click.echo(f"{summary} -> {out}", err=True)


@manifest.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the schema to this file (atomically) instead of stdout")
@click.option("--check", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="exit 1 if FILE differs from the current schema (e.g. manifests/schema.json in CI)")
def schema(out: Path | None, check: Path | None) -> None:
    """Print the manifest JSON Schema (for editors and CI; the repository keeps a copy in manifests/schema.json)."""
    text = schema_text()
    if check is not None:
        current = check.read_text(encoding="utf-8") if check.is_file() else ""
        if current != text:
            raise click.ClickException(f"{check} is out of date; run `worldloom manifest schema --out {check}`")
        click.echo(f"{check} is current")
        return
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        write_atomic(out, text)
    except OSError as error:
        raise UserError(f"{out}: cannot write ({error.strerror}); fix: choose a writable --out path") from None
    click.echo(f"wrote {out}", err=True)
