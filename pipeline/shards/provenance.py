"""`dataset.json`: where a dataset came from (inputs and their hashes, code version, config, counts)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

SCHEMA = "worldloom.dataset/1"


def code_version() -> dict[str, str]:
    """Package version plus `git describe` of the source tree when it is a git checkout."""
    from importlib import metadata

    try:
        version = metadata.version("worldloom")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info = {"package": "worldloom", "version": version, "git": ""}
    repo = Path(__file__).resolve().parents[2]
    try:
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=5, check=False,
        )
        if described.returncode == 0:
            info["git"] = described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_dataset_json(path: Path, document: dict[str, Any]) -> Path:
    document = {"schema": SCHEMA, **document}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_dataset_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
