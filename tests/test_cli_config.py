"""The command line a new user meets: --set, packaged configs and manifests from any directory,
`config show`, `manifest schema` on stdout, did-you-mean on commands, early endpoint checks and
progress bars that fit 80 columns."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from pipeline.cli import cli
from contract.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _worldloom(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed entry point, run from `cwd` (outside the checkout)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(Path(sys.executable).with_name("worldloom")), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_set_overrides_and_did_you_mean(tmp_path: Path) -> None:
    shown = CliRunner().invoke(cli, ["config", "show", "train", "tiny_vae", "--set", "steps=20",
                                     "--set", "optim.lr=1e-4", "--set", "data.resolution=[32, 48]"])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    loaded = yaml.safe_load(text)  # the printout is valid YAML a user can save and edit
    assert loaded["steps"] == 20 and loaded["optim"]["lr"] == 1e-4 and loaded["data"]["resolution"] == [32, 48]
    assert loaded["stage"] == "vae" and loaded["name"] == "tiny-vae"
    assert "# peak learning rate" in text  # every field carries its description

    from training.config import load_train_config, parse_set_options, with_overrides

    with pytest.raises(UserError) as caught:
        with_overrides(load_train_config("tiny_vae"), "--set", **parse_set_options(["optim.lrr=1"]))
    assert "did you mean `optim.lr`" in caught.value.one_line()
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_set_options(["steps"])


def test_train_refuses_a_bad_set_in_one_line(tmp_path: Path) -> None:
    result = _worldloom("train", "tiny_vae", "--data", str(tmp_path), "--set", "optimm.lr=1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --set optimm.lr: no field 'optimm' in the top level; "
                                                  "did you mean `optim`?"]


def test_packaged_configs_and_manifests_work_from_another_directory(tmp_path: Path) -> None:
    shown = _worldloom("config", "show", "train", "tiny_world", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["stage"] == "world"
    validated = _worldloom("manifest", "validate", "quickstart", "city_drive", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.count("ok ") == 2 and "quickstart" in validated.stdout
    wrong = _worldloom("manifest", "validate", "quikstart", cwd=tmp_path)
    assert wrong.returncode == 2 and "did you mean `quickstart`" in wrong.stderr
    from training.config import find_config

    with pytest.raises(UserError, match="did you mean `tiny_vae`"):
        find_config("tiny_vea")


def test_config_show_defaults_of_every_kind() -> None:
    for kind, expected in (("train", "stage:  # REQUIRED"), ("generate", "shard_max_bytes: 500000000"),
                           ("curate", "dedupe:")):
        shown = CliRunner().invoke(cli, ["config", "show", kind])
        assert shown.exit_code == 0, shown.output
        assert expected in shown.output, kind


def test_manifest_schema_prints_to_stdout_and_writes_only_with_out(tmp_path: Path) -> None:
    committed = REPO / "manifests" / "schema.json"
    before = committed.stat().st_mtime_ns
    printed = CliRunner().invoke(cli, ["manifest", "schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.output)["title"]
    assert committed.stat().st_mtime_ns == before  # nothing written into the source tree
    written = CliRunner().invoke(cli, ["manifest", "schema", "--out", str(tmp_path / "s.json")])
    assert written.exit_code == 0 and json.loads((tmp_path / "s.json").read_text()) == json.loads(printed.output)
    checked = CliRunner().invoke(cli, ["manifest", "schema", "--check", str(committed)])
    assert checked.exit_code == 0, checked.output


def test_unknown_command_suggests_the_closest(tmp_path: Path) -> None:
    result = _worldloom("genrate", "quickstart", "--out", "x", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: worldloom genrate: no such command; did you mean `worldloom generate`?"


def test_generate_checks_the_endpoint_before_the_run(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = _worldloom("generate", "quickstart", "--out", str(tmp_path / "d"), "--endpoint", f"127.0.0.1:{port}",
                        cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port} is not reachable" in lines[0]
    assert time.monotonic() - started < 45  # one connect timeout (5 s) plus start-up, not 74 s of retries
    assert not (tmp_path / "d").exists()  # refused before anything was written


def _render(progress, width: int = 80) -> list[str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    console.print(progress.make_tasks_table(progress.tasks))
    return buffer.getvalue().rstrip("\n").splitlines()


def test_progress_bars_fit_80_columns_with_the_eta_whole() -> None:
    from pipeline.generate.progress import generate_bar
    from training.cli import train_progress

    bar = generate_bar(Console(file=io.StringIO()))
    task = bar.add_task("clips", total=12_000, rendered=0, kept=9_999, rejected=1_999, failed=12, fps=1234.5)
    bar.update(task, completed=11_000)
    bar.tasks[0].start_time = time.monotonic() - 3_000  # elapsed 0:50:00, ETA needs its width
    lines = _render(bar)
    assert len(lines) == 1 and len(lines[0]) <= 80 and "…" not in lines[0], lines
    assert "eta" in lines[0] and "kept 9999" in lines[0]

    progress, task, update = train_progress(Console(file=io.StringIO()), "world", 15_000)
    update({"step": 7_500, "loss": 0.123456})
    progress.tasks[0].start_time = time.monotonic() - 600
    lines = _render(progress)
    assert len(lines) == 1 and len(lines[0]) <= 80 and "…" not in lines[0], lines
    assert "loss 0.1235" in lines[0] and "7500/15000" in lines[0] and "eta" in lines[0]
