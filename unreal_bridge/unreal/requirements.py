"""The plugin's Python requirements: one pinned, hashed lock, copied into the .uplugin.

The editor installs a plugin's `PythonRequirements` with pip, and with "Pip Strict Hash
Checking" on (Epic's default for its own plugins) every package, transitive ones included, must
be pinned with `==` and carry `--hash` (Epic, "Python Plugin Dependency Management"; each string
in `Requirements` is one line of a requirements.txt). So:

- `plugin/WorldloomBridge/requirements.in`: what the bridge imports;
- `plugin/WorldloomBridge/constraints.txt`: the versions worldloom's tests run;
- `plugin/WorldloomBridge/requirements.lock`: `uv pip compile --universal --generate-hashes`
  of the two (every package, every published file's sha256);
- `python -m unreal_bridge.unreal.requirements --write`: copies the lock into
  `WorldloomBridge.uplugin`; `--check` (and tests/test_unreal_requirements.py) fails when they
  differ or a line lacks a pin or a hash.

A project that also enables a plugin pinning other versions of the same packages (Epic's
PythonFoundationPackages pins protobuf 4.24.0) cannot satisfy both in one pip install: install
the bridge with `install_plugin --wheels` instead, which vendors the wheels and drops
`PythonRequirements` from the installed descriptor (python_env.py puts them first on sys.path).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin" / "WorldloomBridge"
LOCK = PLUGIN_DIR / "requirements.lock"
DESCRIPTOR = PLUGIN_DIR / "WorldloomBridge.uplugin"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(\s*;\s*[^-][^\n]*?)?$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str  # environment marker ("" when none)
    hashes: tuple[str, ...]

    def line(self) -> str:
        """One requirements.txt line, as the .uplugin carries it."""
        marker = f" ; {self.marker}" if self.marker else ""
        return f"{self.name}=={self.version}{marker} " + " ".join(f"--hash={h}" for h in self.hashes)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> list[Pin]:
    """Parse a `--generate-hashes` requirements file (continuation lines, comments)."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("--hash") else raw.rstrip()
        if not line.strip():
            continue
        current += " " + line.strip().rstrip("\\").strip()
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    if current.strip():
        logical.append(current.strip())
    pins = []
    for entry in logical:
        requirement, *hash_parts = entry.split(" --hash=")
        match = _PIN.match(requirement.strip())
        if not match:
            raise ValueError(f"requirement {requirement!r} is not pinned with == (strict hash checking needs every pin)")
        hashes = tuple(part.strip() for part in hash_parts)
        if not hashes or not all(_HASH.match(h) for h in hashes):
            raise ValueError(f"requirement {requirement!r} has no valid --hash=sha256:... (strict hash checking refuses it)")
        marker = (match.group(3) or "").strip().lstrip(";").strip()
        pins.append(Pin(normalise(match.group(1)), match.group(2), marker, hashes))
    return pins


def descriptor_lines(descriptor: dict) -> list[str]:
    lines = []
    for block in descriptor.get("PythonRequirements", []):
        lines.extend(block.get("Requirements", []))
    return lines


def check(descriptor_path: Path = DESCRIPTOR, lock_path: Path = LOCK) -> list[str]:
    """Problems (empty when the .uplugin carries exactly the lock, every line pinned and hashed)."""
    problems = []
    pins = parse_lock(lock_path.read_text())
    expected = [pin.line() for pin in pins]
    actual = descriptor_lines(json.loads(descriptor_path.read_text()))
    if actual != expected:
        problems.append(f"{descriptor_path.name} PythonRequirements differ from {lock_path.name}; "
                        "run `python -m unreal_bridge.unreal.requirements --write`")
    for line in actual:
        try:
            parse_lock(line)
        except ValueError as error:
            problems.append(str(error))
    return problems


def write(descriptor_path: Path = DESCRIPTOR, lock_path: Path = LOCK) -> None:
    descriptor = json.loads(descriptor_path.read_text())
    descriptor["PythonRequirements"] = [{"Platform": "All", "Requirements": [pin.line() for pin in parse_lock(lock_path.read_text())]}]
    descriptor_path.write_text(json.dumps(descriptor, indent="\t") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unreal_bridge.unreal.requirements", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="copy requirements.lock into the .uplugin")
    action.add_argument("--check", action="store_true", help="exit 1 if the .uplugin and the lock differ")
    args = parser.parse_args(argv)
    if args.write:
        write()
        print(f"wrote {len(parse_lock(LOCK.read_text()))} pinned, hashed requirements into {DESCRIPTOR}")
        return 0
    problems = check()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
