"""Copy the WorldloomBridge plugin and worldloom's pure-Python code into an Unreal project.

    python -m unreal_bridge.unreal.install_plugin --project /path/to/MyProject [--wheels DIR]

Result:

    MyProject/Plugins/WorldloomBridge/WorldloomBridge.uplugin     (PythonRequirements: pinned, hashed)
    MyProject/Plugins/WorldloomBridge/Content/Python/init_unreal.py
    MyProject/Plugins/WorldloomBridge/Content/Python/Lib/site-packages/{unreal_bridge,contract}/

The editor adds `<Plugin>/Content/Python/Lib/site-packages` to `sys.path` for enabled plugins.
With `--wheels DIR` (wheels downloaded for the editor's Python and platform from the plugin's
lock, e.g. `pip download --only-binary=:all: --implementation cp --python-version 3.11
--platform win_amd64 --no-deps --require-hashes -r requirements.lock -d DIR`) each wheel's
sha256 is checked against the lock, the wheels are unpacked into
`Content/Python/<Platform>/Lib/site-packages`, and `PythonRequirements` is removed from the
installed descriptor: the vendored packages are the ones used (python_env.py puts them first on
sys.path), and the editor's pip install cannot clash with another plugin's pins (protobuf 4.24.0
in PythonFoundationPackages).

The copy goes to a temporary folder first and is renamed into place, so an interrupted install
never leaves a half plugin that the editor would load.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import sys
import zipfile
from pathlib import Path

from contract.errors import UserError
from unreal_bridge.unreal.requirements import normalise, parse_lock

PLUGIN_NAME = "WorldloomBridge"
PLUGIN_SOURCE = Path(__file__).resolve().parent / "plugin" / PLUGIN_NAME
#: Where the editor enters our code (init_unreal.py imports it); the plugin gets its import closure.
EDITOR_ENTRY = "unreal_bridge.unreal.startup"
#: Our top-level packages the closure may reach (the data engine, training and model never are).
REPO_PACKAGES = ("unreal_bridge", "contract")
PLATFORMS = ("Win64", "Linux", "Mac")


def install(project: Path, *, wheels: Path | None = None, platform: str = "Win64", force: bool = False) -> Path:
    """Install the plugin into `project`; returns the plugin folder."""
    project = Path(project)
    if not any(project.glob("*.uproject")):
        raise UserError(f"--project {project}: no .uproject file there; pass the folder that contains MyProject.uproject")
    if platform not in PLATFORMS:
        raise UserError(f"--platform {platform!r} is unknown; use one of {', '.join(PLATFORMS)}")
    target = project / "Plugins" / PLUGIN_NAME
    if target.exists() and not force:
        raise UserError(f"{target} already exists; pass --force to replace it")
    staging = target.with_name(f".{PLUGIN_NAME}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(PLUGIN_SOURCE, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    site = staging / "Content" / "Python" / "Lib" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    source_root = Path(__file__).resolve().parents[2]
    for relative in editor_files(source_root):
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_root / relative, site / relative)
    descriptor_path = staging / f"{PLUGIN_NAME}.uplugin"
    if wheels is not None:
        platform_site = staging / "Content" / "Python" / platform / "Lib" / "site-packages"
        platform_site.mkdir(parents=True, exist_ok=True)
        found = sorted(Path(wheels).glob("*.whl"))
        if not found:
            raise UserError(f"--wheels {wheels}: no .whl files there; download them with `pip download --only-binary=:all: ...`")
        _check_wheels(found, parse_lock((staging / "requirements.lock").read_text()), wheels)
        for wheel in found:  # a wheel is a zip laid out as site-packages content
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(platform_site)
        descriptor = json.loads(descriptor_path.read_text())
        descriptor.pop("PythonRequirements", None)  # vendored: the editor's pip install has nothing to do
        descriptor_path.write_text(json.dumps(descriptor, indent="\t") + "\n")
    json.loads((staging / f"{PLUGIN_NAME}.uplugin").read_text())  # a broken descriptor must not be installed
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    return target


def editor_files(source_root: Path) -> list[Path]:
    """The files the editor imports, relative to `source_root`: the import closure of
    `EDITOR_ENTRY` over our packages (read with `ast`, nothing executed), every `__init__.py` on
    the way, and the protocol's generated code and `.proto`. The procedural renderer, the render
    client, the conformance checker and the command line stay out of the editor."""
    def module_file(module: str) -> Path | None:
        base = Path(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if (source_root / candidate).is_file():
                return candidate
        return None

    wanted: set[Path] = set()
    queue = [EDITOR_ENTRY]
    while queue:
        module = queue.pop()
        found = module_file(module)
        if found is None or found in wanted:
            continue
        wanted.add(found)
        parts = module.split(".")
        queue.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # the packages above it
        package = module if found.name == "__init__.py" else ".".join(parts[:-1])
        for node in ast.walk(ast.parse((source_root / found).read_text(), filename=str(found))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]  # `from x import submodule`
            else:
                continue
            queue.extend(name for name in names if name.split(".")[0] in REPO_PACKAGES)
    protos = source_root / "unreal_bridge" / "protos"
    wanted.update(path.relative_to(source_root) for pattern in ("**/*.py", "**/*.proto", "**/*.pyi") for path in protos.glob(pattern))
    return sorted(wanted)


def _check_wheels(found: list[Path], pins: list, wheels: Path) -> None:
    """Every wheel is a locked version with a locked hash; every unconditional pin has a wheel."""
    by_name = {pin.name: pin for pin in pins}
    seen = set()
    for wheel in found:
        name, version = wheel.name.split("-")[:2]
        pin = by_name.get(normalise(name))
        if pin is None or pin.version != version:
            locked = f"the lock pins {pin.version}" if pin else "it is not in the lock"
            raise UserError(f"--wheels {wheels}: {wheel.name} is {name} {version} but {locked}; download from requirements.lock")
        digest = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest not in pin.hashes:
            raise UserError(f"--wheels {wheels}: {wheel.name} does not match any hash in requirements.lock; download it again")
        seen.add(pin.name)
    missing = sorted(pin.name for pin in pins if not pin.marker and pin.name not in seen)
    if missing:
        raise UserError(f"--wheels {wheels}: no wheel for {', '.join(missing)}; download every package of requirements.lock")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unreal_bridge.unreal.install_plugin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True, help="folder containing the .uproject")
    parser.add_argument("--wheels", type=Path, default=None, help="folder of wheels for the editor's Python (offline install)")
    parser.add_argument("--platform", default="Win64", help="Win64 | Linux | Mac (for --wheels)")
    parser.add_argument("--force", action="store_true", help="replace an existing installation")
    args = parser.parse_args(argv)
    try:
        target = install(args.project, wheels=args.wheels, platform=args.platform, force=args.force)
    except UserError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return 2
    print(f"installed {PLUGIN_NAME} into {target}; enable it in Edit > Plugins (or the .uproject) and restart the editor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
