"""Start the worldloom render server inside the Unreal Editor.

Run by the editor on its game thread, e.g. headless:

    UnrealEditor MyProject.uproject -RenderOffScreen -unattended -nosplash -nosound -log \\
        -ini:EditorSettings:[/Script/UnrealEd.EditorPerformanceSettings]:bThrottleCPUWhenNotForeground=False \\
        -ExecCmds="t.IdleWhenNotForeground 0" \\
        -ExecutePythonScript="/path/to/unreal_bridge/unreal/startup.py --port 50051"

(`python -m unreal_bridge.unreal.launch_editor` prints exactly this for a project.)

or from the editor's Python console: `import unreal_bridge.unreal.startup as s; s.main([])`.

Settings, command-line flags first, then environment variables:

| flag             | environment               | default     |
| ---------------- | ------------------------- | ----------- |
| `--host`         | `WORLDLOOM_UNREAL_HOST`   | 127.0.0.1   |
| `--port`         | `WORLDLOOM_UNREAL_PORT`   | 50051       |
| `--auth-token`   | `WORLDLOOM_AUTH_TOKEN`    | none (loopback only) |
| `--heartbeat-ms` | `WORLDLOOM_HEARTBEAT_MS`  | 500         |
| `--capture`      | `WORLDLOOM_UNREAL_CAPTURE`| scene_capture (or movie_render_queue) |
| `--exposure-ev100` | `WORLDLOOM_UNREAL_EXPOSURE_EV100` | none (the level's auto exposure) |

The script returns immediately (the editor must keep ticking); the gRPC server lives on its own
threads and `set_keep_python_script_alive(True)` keeps the Python state, and the tick callback
that drains the work queue, alive after the script ends.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["main", "stop", "BridgeHandle"]


@dataclass
class BridgeHandle:
    """What must stay referenced while the editor runs (module global `_BRIDGE`)."""

    server: Any
    executor: Any
    backend: Any
    address: str


_BRIDGE: BridgeHandle | None = None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="startup.py", description="worldloom render server inside Unreal Editor")
    parser.add_argument("--host", default=env.get("WORLDLOOM_UNREAL_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("WORLDLOOM_UNREAL_PORT", "50051")))
    parser.add_argument("--auth-token", default=env.get("WORLDLOOM_AUTH_TOKEN") or None)
    parser.add_argument("--heartbeat-ms", type=int, default=int(env.get("WORLDLOOM_HEARTBEAT_MS", "500")))
    parser.add_argument("--capture", choices=("scene_capture", "movie_render_queue"),
                        default=env.get("WORLDLOOM_UNREAL_CAPTURE", "scene_capture"),
                        help="scene_capture (fast, per tick) or movie_render_queue (cinematic RGB)")
    parser.add_argument("--exposure-ev100", type=float,
                        default=float(env["WORLDLOOM_UNREAL_EXPOSURE_EV100"]) if env.get("WORLDLOOM_UNREAL_EXPOSURE_EV100") else None,
                        help="fixed exposure for the RGB capture (manual metering, EV100 bias); default: auto exposure")
    # The editor passes unrelated engine arguments through sys.argv on some platforms: ignore them.
    args, _unknown = parser.parse_known_args(argv)
    return args


def main(argv: list[str] | None = None, *, unreal_module: Any = None) -> BridgeHandle:
    """Start (or return the already running) bridge. Call on the game thread."""
    global _BRIDGE
    if _BRIDGE is not None:
        return _BRIDGE
    if unreal_module is None:
        import unreal as unreal_module  # only importable inside the editor

    unreal = unreal_module
    from unreal_bridge.unreal.python_env import BridgeEnvironmentError, check_runtime, prefer_plugin_packages

    prefer_plugin_packages()  # the plugin's vendored wheels before any engine copies
    try:
        check_runtime()
    except BridgeEnvironmentError as error:
        unreal.log_error(f"worldloom: {error}")
        raise
    from unreal_bridge.server import RenderServer, ServerConfig
    from unreal_bridge.unreal.backend import UnrealBackend, UnrealBackendConfig
    from unreal_bridge.unreal.game_thread import GameThreadExecutor

    args = _parse(argv)
    unreal.EditorPythonScripting.set_keep_python_script_alive(True)
    executor = GameThreadExecutor()
    executor.install(unreal)
    try:
        server = RenderServer(ServerConfig(host=args.host, port=args.port, auth_token=args.auth_token,
                                           heartbeat_interval_ms=args.heartbeat_ms))
        server.start()  # health NOT_SERVING until the backend is attached
        backend = UnrealBackend(unreal, executor, UnrealBackendConfig(capture=args.capture, exposure_ev100=args.exposure_ev100))
        server.attach_backend(backend)
    except Exception as error:
        executor.uninstall()
        unreal.log_error(f"worldloom: render server failed to start: {error}")
        raise
    _BRIDGE = BridgeHandle(server=server, executor=executor, backend=backend, address=server.address)
    security = "auth token required" if args.auth_token else "loopback only, no token"
    import sys

    import google.protobuf

    # What docs/unreal.md's first-run checklist asks to look for in the Output Log.
    unreal.log(f"worldloom: Python {sys.version.split()[0]}, protobuf {google.protobuf.__version__} from "
               f"{google.protobuf.__file__}; background throttle off; frames exported to {backend.export_dir}")
    unreal.log(f"worldloom render server ready on {server.address} ({backend.engine_version}; {security})")
    return _BRIDGE


def stop() -> None:
    """Stop the server and unregister the tick callback. Call on the game thread."""
    global _BRIDGE
    bridge, _BRIDGE = _BRIDGE, None
    if bridge is None:
        return
    bridge.executor.uninstall()  # fail queued work first so gRPC threads stop waiting
    bridge.server.stop(grace=1.0)


if __name__ == "__main__":  # -ExecutePythonScript runs the file as __main__
    import sys

    main(sys.argv[1:])
