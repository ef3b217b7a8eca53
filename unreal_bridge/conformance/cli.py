"""`worldloom render-server check HOST:PORT`: is this server a conforming worldloom.render.v1 server?

    worldloom render-server check 127.0.0.1:50051
    worldloom render-server check gpu-box:50051 --auth-token "$TOKEN" --tls-ca ca.pem --manifest manifests/unreal_probe.yaml
    worldloom render-server check 127.0.0.1:50051 --rule resume --rule cancellation --json-report check.json

Exit 0 when every rule passes or is skipped, 1 naming the broken rules otherwise.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import click

from contract.errors import UserError

_ADDRESS = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:[0-9]{1,5}$")
_STYLE = {"pass": "green", "fail": "red", "skip": "yellow"}


@click.command("check")
@click.argument("address", metavar="HOST:PORT")
@click.option("--auth-token", envvar="WORLDLOOM_AUTH_TOKEN", default=None, help="the server's --auth-token (env WORLDLOOM_AUTH_TOKEN)")
@click.option("--tls-ca", type=click.Path(path_type=Path), default=None,
              help="PEM CA certificate of a server started with --tls-cert/--tls-key (default: plaintext)")
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), default=None,
              help="probe manifest to render (default: a built-in 32x24, 6-frame procedural clip; Unreal servers need one naming a level)")
@click.option("--scene", default="", help="scene of --manifest to use (default: the first)")
@click.option("--connect-timeout", default=10.0, show_default=True, help="seconds to wait for the server to accept a connection")
@click.option("--open-timeout", default=300.0, show_default=True, help="seconds OpenSession may take (level loading)")
@click.option("--render-timeout", default=300.0, show_default=True, help="seconds one Render call of the probe clip may take")
@click.option("--rule", "rules", multiple=True, help="run only these rules (repeatable); see docs/unreal.md for the list")
@click.option("--json-report", type=click.Path(path_type=Path), default=None, help="also write the report as JSON here")
def check(address: str, auth_token: str | None, tls_ca: Path | None, manifest_path: Path | None, scene: str,
          connect_timeout: float, open_timeout: float, render_timeout: float, rules: tuple[str, ...],
          json_report: Path | None) -> None:
    """Run the protocol conformance suite against the render server at HOST:PORT."""
    from rich.console import Console
    from rich.markup import escape

    from unreal_bridge.conformance import run_conformance

    if not _ADDRESS.match(address):
        raise UserError(f"HOST:PORT {address!r} is not an address; write it like 127.0.0.1:50051")
    manifest_yaml = None
    if manifest_path is not None:
        try:
            manifest_yaml = manifest_path.read_text()
        except OSError as error:
            raise UserError(f"--manifest {manifest_path}: cannot read it ({error.strerror}); pass an existing manifest YAML") from None
    root_certificates = None
    if tls_ca is not None:
        try:
            root_certificates = tls_ca.read_bytes()
        except OSError as error:
            raise UserError(f"--tls-ca {tls_ca}: cannot read it ({error.strerror}); pass the PEM file of the server's CA") from None
    console = Console(soft_wrap=True)  # one line per rule, whatever the terminal width
    console.print(f"[bold]worldloom render-server check[/] {address}")

    def show(result) -> None:
        style = _STYLE[result.status]
        console.print(f"  [{style}]{result.status.upper():4}[/] {result.name:26} {escape(result.message)} [dim]({result.seconds:.2f} s)[/]")

    report = run_conformance(
        address, manifest_yaml=manifest_yaml, scene=scene, auth_token=auth_token, root_certificates=root_certificates,
        connect_timeout_s=connect_timeout, open_timeout_s=open_timeout, render_timeout_s=render_timeout,
        rules=list(rules) or None, on_result=show,
    )
    if json_report is not None:
        temporary = json_report.with_name(json_report.name + ".tmp")
        temporary.write_text(json.dumps(report.to_dict(), indent=2))
        os.replace(temporary, json_report)
    counts = {status: sum(r.status == status for r in report.results) for status in ("pass", "fail", "skip")}
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    if report.failed:
        names = ", ".join(result.name for result in report.failed)
        console.print(f"[red bold]FAILED[/] {summary}: broken rule(s) {names}")
        sys.exit(1)
    console.print(f"[green bold]OK[/] {summary}: {address} conforms to worldloom.render.v1")
