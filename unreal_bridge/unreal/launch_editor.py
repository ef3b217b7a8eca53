"""The Unreal Editor command line for a headless worldloom render server.

    python -m unreal_bridge.unreal.launch_editor --editor /path/to/UnrealEditor \\
        --project /path/to/MyProject.uproject [--port 50051] [--run]

prints (or, with --run, starts) the command docs/unreal.md explains:

- `-RenderOffScreen`: render without a window (`-NullRHI` would draw nothing);
- `-unattended -nosplash -nosound -log`: no dialogs that could block the game thread;
- the throttle flags of editor_settings.py: an unfocused editor otherwise ticks a few times a
  second;
- `-ExecutePythonScript=<startup.py> --host ... --port ...`: the start-up script, from the
  plugin's copy of worldloom.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from contract.errors import UserError
from unreal_bridge.unreal.editor_settings import LAUNCH_FLAGS

PLUGIN_STARTUP = Path("Plugins/WorldloomBridge/Content/Python/Lib/site-packages/unreal_bridge/unreal/startup.py")


def editor_command(editor: Path, project: Path, *, host: str = "127.0.0.1", port: int = 50051,
                   extra_script_args: tuple[str, ...] = ()) -> list[str]:
    """argv for the editor; the start-up script is the one install_plugin copied into the project."""
    project = Path(project)
    if project.suffix != ".uproject":
        raise UserError(f"--project {project}: pass the .uproject file, e.g. /path/to/MyProject/MyProject.uproject")
    script = project.parent / PLUGIN_STARTUP
    script_args = " ".join(shlex.quote(a) for a in ("--host", host, "--port", str(port), *extra_script_args))
    return [
        str(editor), str(project),
        "-RenderOffScreen", "-unattended", "-nosplash", "-nosound", "-log",
        *LAUNCH_FLAGS,
        f'-ExecutePythonScript="{script} {script_args}"',
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unreal_bridge.unreal.launch_editor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--editor", type=Path, required=True, help="UnrealEditor executable (UE 5.4 or later)")
    parser.add_argument("--project", type=Path, required=True, help="the .uproject with the WorldloomBridge plugin installed")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--run", action="store_true", help="start the editor instead of printing the command")
    args = parser.parse_args(argv)
    try:
        command = editor_command(args.editor, args.project, host=args.host, port=args.port)
        if args.run and not args.editor.is_file():
            raise UserError(f"--editor {args.editor}: no such file; pass the UnrealEditor executable of UE 5.4+")
    except UserError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return 2
    if not args.run:
        print(" ".join(command))
        return 0
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
