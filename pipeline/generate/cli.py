"""`worldloom generate MANIFEST... --out DIR`."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("generate")
@click.argument("manifests", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="dataset directory")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="generate config YAML (see docs/generate.md)")
@click.option("--ray-address", default=None, help="connect to a Ray cluster instead of starting a local one")
@click.option("--endpoint", "endpoints", multiple=True, help="render server HOST:PORT (repeatable); none: start procedural servers")
@click.option("--workers", type=int, default=None, help="procedural render servers to start (default: one per free CPU)")
@click.option("--shard-max-bytes", type=int, default=None, help="shard size limit (default 500 MB)")
@click.option("--overwrite", is_flag=True, help="start fresh instead of resuming")
@click.option("--no-mlflow", is_flag=True, help="do not log an MLflow data run")
@click.option("--no-progress", is_flag=True, help="no live progress bar")
def generate(manifests: tuple[Path, ...], out: Path, config_path: Path | None, ray_address: str | None,
             endpoints: tuple[str, ...], workers: int | None, shard_max_bytes: int | None, overwrite: bool,
             no_mlflow: bool, no_progress: bool) -> None:
    """Render scene MANIFESTs (files, or example names such as quickstart) into a WebDataset
    dataset at --out (resumes unless --overwrite)."""
    from contract.manifest.packaged import find_manifest
    from pipeline.generate.config import load_generate_config
    from pipeline.generate.run import run_generate

    manifests = tuple(find_manifest(m) for m in manifests)

    overrides = {"out": str(out), "ray_address": ray_address, "workers": workers, "shard_max_bytes": shard_max_bytes,
                 "endpoints": list(endpoints) or None, "overwrite": overwrite or None}
    config = load_generate_config(config_path, overrides)
    if no_mlflow:
        config.mlflow.enabled = False
    if no_progress:
        config.progress = False
    check_endpoints(list(config.endpoints or []))
    try:
        result = run_generate(list(manifests), config)
    except KeyboardInterrupt:
        # click turns KeyboardInterrupt into a bare "aborted"; say what happened to the work
        click.secho(f"interrupted: completed clips are kept in {out}; re-run the same command to resume "
                    "(--overwrite starts fresh)", fg="yellow", err=True)
        sys.exit(130)
    if result.failed:
        click.secho(f"{len(result.failed)} clip(s) failed after {config.retries} retries; they are in "
                    f"{result.out}/index.parquet with status=failed and re-running the command retries them:", fg="red", err=True)
        for key, error in sorted(result.failed.items())[:10]:
            click.secho(f"  {key}: {error}", fg="red", err=True)
        sys.exit(1)



def check_endpoints(endpoints: list[str], timeout_s: float = 5.0) -> None:
    """Before any Ray or rendering: every --endpoint answers, is healthy and speaks our protocol.

    Without this a closed port cost 74 s of the render actors' reconnect backoff before the run
    failed; now it is one line within `timeout_s` per endpoint.
    """
    from unreal_bridge.client import RenderClient

    for endpoint in endpoints:
        with RenderClient(endpoint, connect_timeout=timeout_s, max_retries=0) as client:
            info = client.server_info()  # UserError: unreachable, not serving in time, wrong protocol, auth
            click.echo(f"render server {endpoint}: {info.backend} ({info.engine_version}), protocol {info.protocol_version}", err=True)
