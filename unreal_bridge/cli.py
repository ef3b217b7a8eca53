"""`worldloom render-server`: run the procedural render server, or check another server.

    worldloom render-server                      # 127.0.0.1:50051, procedural backend
    worldloom render-server --port 0             # any free port; the bound port is printed
    WORLDLOOM_AUTH_TOKEN=... worldloom render-server --host 0.0.0.0 --tls-cert c.pem --tls-key k.pem
    worldloom render-server --host 0.0.0.0 --auth-token-file /run/secrets/token --asset-dir /data/heightmaps
    worldloom render-server check HOST:PORT      # protocol conformance suite

Binding anything but loopback without a token is refused: a render server builds whatever
world it is sent and must not be an open port on a network. The token comes from
$WORLDLOOM_AUTH_TOKEN or `--auth-token-file`; `--auth-token TOKEN` still works but shows the
token to anyone who can list processes, so it warns.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from contract.errors import UserError

__all__ = ["render_server", "run_server", "main"]

READY_PREFIX = "worldloom render-server ready on"


class _RenderServerGroup(click.Group):
    """Sub-commands imported when called: `check` belongs to the conformance suite."""

    lazy = {"check": ("unreal_bridge.conformance.cli", "check")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module_name, attribute = self.lazy[name]
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            missing = str(error)

            @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
            def unavailable() -> None:
                raise UserError(
                    f"`render-server {name}` needs {module_name}:{attribute}, which is not available in this checkout "
                    f"({missing}); install the conformance suite or update worldloom"
                )

            return unavailable


def _write_atomically(path: Path, text: str) -> None:
    """Readers never see a half-written port file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    """Exit when the launching process is gone, so a killed test run leaves no orphan server."""
    while not stop.wait(0.5):
        if os.getppid() != parent_pid:
            stop.set()


def read_token_file(path: Path) -> str:
    """The token in `path` (surrounding whitespace dropped); one-line errors for every failure."""
    try:
        if path.stat().st_size > 4096:
            raise UserError(f"--auth-token-file {path}: the file is larger than 4 KiB; it should hold only the token")
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--auth-token-file {path}: cannot read it ({type(error).__name__}); give a readable text file holding the token") from None
    if not token or any(ch.isspace() for ch in token):
        raise UserError(f"--auth-token-file {path}: expected one token with no spaces; write just the token into the file")
    return token


def choose_token(flag_token: str | None, token_file: Path | None, environ: dict[str, str] | None = None) -> str | None:
    """--auth-token-file, else --auth-token (warns: visible in the process list), else the environment."""
    from unreal_bridge.client import token_from_env

    if token_file is not None and flag_token:
        raise UserError("give --auth-token-file or --auth-token, not both")
    if token_file is not None:
        return read_token_file(Path(token_file))
    if flag_token:
        click.secho("warning: --auth-token puts the token in the process list (ps, /proc); "
                    "set WORLDLOOM_AUTH_TOKEN or use --auth-token-file instead", fg="yellow", err=True)
        return flag_token
    return token_from_env(environ)


def run_server(
    *,
    host: str,
    port: int,
    auth_token: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    heartbeat_ms: int,
    max_chunk_bytes: int,
    port_file: Path | None,
    parent_pid: int | None,
    asset_dirs: tuple[Path, ...] = (),
) -> None:
    """Bind, build the backend (health NOT_SERVING meanwhile), announce, serve until signalled."""
    from unreal_bridge.server import RenderServer, ServerConfig

    config = ServerConfig(
        host=host,
        port=port,
        auth_token=auth_token or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        heartbeat_interval_ms=heartbeat_ms,
        max_chunk_bytes=max_chunk_bytes,
    )
    server = RenderServer(config)  # refuses a non-loopback host without a token
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    click.echo(f"worldloom render-server starting on {server.address} (health NOT_SERVING until the backend is ready)", err=True)

    from unreal_bridge.procedural import ProceduralBackend

    backend = ProceduralBackend(asset_dirs=asset_dirs)
    server.attach_backend(backend)
    if port_file is not None:
        _write_atomically(Path(port_file), f"{server.port}\n")
    security = "TLS" if tls_cert else "plaintext"
    security += ", token required" if auth_token else ", loopback only"
    click.echo(f"{READY_PREFIX} {server.address} (backend {backend.name}, {backend.engine_version}; {security})")
    sys.stdout.flush()
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        click.echo("worldloom render-server stopping", err=True)
        server.stop(grace=1.0)


@click.group(
    "render-server",
    cls=_RenderServerGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; non-loopback needs --auth-token.")
@click.option("--port", default=50051, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--auth-token", default=None, help="Token clients must send. Visible in the process list: prefer env WORLDLOOM_AUTH_TOKEN or --auth-token-file.")
@click.option("--auth-token-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Read the token from this file.")
@click.option("--asset-dir", "asset_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of heightmap PNGs clients may name (repeatable); pybullet_data's files are always available.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="PEM certificate chain.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="PEM private key.")
@click.option("--heartbeat-ms", default=500, show_default=True, type=click.IntRange(10, 60000), help="Heartbeat interval while streaming.")
@click.option("--max-chunk-bytes", default=1 << 20, show_default=True, type=click.IntRange(1024, 1 << 20), help="Largest chunk message payload.")
@click.option("--port-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the bound port here once SERVING.")
@click.option("--parent-pid", type=int, default=None, hidden=True)
@click.pass_context
def render_server(
    ctx: click.Context,
    host: str,
    port: int,
    auth_token: str | None,
    auth_token_file: Path | None,
    asset_dirs: tuple[Path, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    heartbeat_ms: int,
    max_chunk_bytes: int,
    port_file: Path | None,
    parent_pid: int | None,
) -> None:
    """Run the procedural (PyBullet) render server speaking worldloom.render.v1."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    run_server(
        host=host,
        port=port,
        auth_token=choose_token(auth_token, auth_token_file),
        asset_dirs=tuple(asset_dirs),
        tls_cert=tls_cert,
        tls_key=tls_key,
        heartbeat_ms=heartbeat_ms,
        max_chunk_bytes=max_chunk_bytes,
        port_file=port_file,
        parent_pid=parent_pid,
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m unreal_bridge.cli`: the same command with worldloom's one-line errors."""
    try:
        render_server.main(args=argv, prog_name="worldloom render-server", standalone_mode=False)
    except UserError as error:
        click.secho(f"error: {error.one_line()}", fg="red", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
