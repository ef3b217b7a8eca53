"""The single `worldloom` command.

Sub-commands live with the package that owns them and are imported only when called, so
`worldloom manifest validate` does not pay for importing torch and Ray.
"""
from __future__ import annotations

import difflib
import importlib
import sys

import click

from contract.errors import UserError
from model.errors import ModelError

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "manifest": "pipeline.cli_manifest:manifest",
    "render-server": "unreal_bridge.cli:render_server",
    "generate": "pipeline.generate.cli:generate",
    "inspect": "pipeline.inspect:inspect_command",
    "curate": "pipeline.curate.cli:curate",
    "select": "pipeline.curate.cli:select",
    "mix": "pipeline.curate.cli:mix",
    "train": "training.cli:train",
    "encode": "training.cli:encode_latents",
    "sample": "training.cli:sample",
    "export": "training.cli:export",
    "model": "model.cli:model",
    "demo": "pipeline.demo:demo",
    "eval": "training.eval.cli:eval_group",
    "config": "pipeline.config_show:config_group",
    "verify": "pipeline.shards.cli:verify_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """An unknown command is one line with the closest name (`genrate` -> `generate`)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            hint = f"did you mean `worldloom {close[0]}`?" if close else "`worldloom --help` lists the commands"
            raise UserError(f"worldloom {name}: no such command", hint=hint)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="worldloom")
def cli() -> None:
    """worldloom: data engine and training stack for video world models."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one red line and exit code 2, never a traceback.

    `UserError` (contract/errors.py) and `ModelError` (model/errors.py: model/ imports nothing of
    ours, so it has its own) are the two user-facing error types; both are handled alike.
    """
    try:
        cli.main(args=argv, prog_name="worldloom", standalone_mode=False)
    except (UserError, ModelError) as error:
        click.secho(f"error: {error.one_line()}", fg="red", err=True)
        sys.exit(error.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # click turns Ctrl-C into Abort when it is not in standalone mode.
        click.secho("interrupted; completed work is kept, re-run the same command to resume", fg="yellow", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
