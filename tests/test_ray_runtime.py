"""pipeline/ray_runtime.py: local by default, a cluster on purpose, token auth when joining.

The cluster tests run a real `ray start --head --block` in its own session, HOME and temp dir
(so its token and address files never touch the user's ~/.ray or /tmp/ray), and join it from
subprocesses: this test session's own Ray (`ray_session`) is never touched.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from contract.errors import UserError
from pipeline.ray_runtime import _probe, resolve_address, token_available

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def test_address_resolution_prefers_flag_then_env_then_local(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None).is_local
    assert resolve_address("local").is_local
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert resolve_address(None).address == "10.0.0.5:6379" and resolve_address(None).source == "$RAY_ADDRESS"
    assert resolve_address("10.0.0.6:6379").address == "10.0.0.6:6379"
    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert resolve_address(None).is_local


def test_token_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert token_available() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 64)
    assert token_available() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="RAY_AUTH_TOKEN_PATH"):
        token_available()
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")
    assert token_available() == "$RAY_AUTH_TOKEN"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_fails_in_one_line_quickly():
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        _probe(f"127.0.0.1:{_free_port()}", "--ray-address")
    assert "no Ray cluster answers" in caught.value.one_line()
    assert time.monotonic() - started < 5
    with pytest.raises(UserError, match="not a Ray address"):
        _probe("nonsense", "--ray-address")


JOIN = """
import sys
from contract.errors import UserError
from pipeline.ray_runtime import init_ray
import ray
try:
    init_ray(sys.argv[1] or None)
except UserError as error:
    print("USERERROR " + error.one_line()); sys.exit(2)
print("GCS " + ray.get_runtime_context().gcs_address)
print("ANSWER", ray.get(ray.remote(lambda: 41 + 1).remote()))
"""


@pytest.fixture(scope="module")
def ray_head():
    """A token-authenticated head, as `ray start --head` makes one on a machine that has a token."""
    home = Path(tempfile.mkdtemp(prefix="/tmp/wlh"))  # short: Ray's unix sockets live under it
    env = {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={home}/t",
                             "--include-dashboard=false", f"--dashboard-port={_free_port()}", "--disable-usage-stats",
                             "--block"], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        lines = []
        while time.monotonic() < deadline:
            line = head.stdout.readline()
            lines.append(line)
            if "Ray runtime started" in line:
                break
            if head.poll() is not None:
                pytest.fail("ray start --head exited:\n" + "".join(lines))
        else:
            pytest.fail("ray start --head did not start in 90 s:\n" + "".join(lines))
        yield {"address": f"127.0.0.1:{port}", "token_path": home / ".ray" / "auth_token", "home": home,
               "banner": "".join(lines)}
    finally:
        # The head and everything it started share its session: stop exactly those processes.
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _join(address: str, **env_overrides: str) -> subprocess.CompletedProcess:
    client_home = tempfile.mkdtemp(prefix="/tmp/wlc")  # no default token file unless a test puts one there
    env = {**os.environ, "HOME": client_home, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    env.update(env_overrides)
    try:
        return subprocess.run([sys.executable, "-c", JOIN, address], env=env, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(client_home, ignore_errors=True)


@pytest.mark.slow
def test_join_token_cluster_with_token_path(ray_head):
    assert "Token authentication is enabled" in ray_head["banner"]  # the head really has auth on
    joined = _join(ray_head["address"], RAY_AUTH_TOKEN_PATH=str(ray_head["token_path"]))
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "ANSWER 42" in joined.stdout
    assert joined.stdout.split("GCS ")[1].split()[0].endswith(ray_head["address"].split(":")[1])


@pytest.mark.slow
def test_join_with_token_in_env_and_via_ray_address(ray_head):
    joined = _join("", RAY_ADDRESS=ray_head["address"], RAY_AUTH_TOKEN=ray_head["token_path"].read_text().strip())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "ANSWER 42" in joined.stdout


@pytest.mark.slow
def test_cluster_refusal_is_one_line_naming_what_to_set(ray_head):
    refused = _join(ray_head["address"], RAY_NUM_REDIS_GET_RETRIES="3")  # gives up after ~3 s, not ~20 s
    assert refused.returncode == 2
    line = [x for x in refused.stdout.splitlines() if x.startswith("USERERROR")]
    assert line and "refused" in line[0] and "RAY_AUTH_TOKEN" in line[0], refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr


@pytest.mark.slow
def test_default_is_a_private_local_instance_without_the_banner(ray_head):
    """With a cluster running on this machine, no address still means a local instance of our own."""
    local = _join("")
    assert local.returncode == 0, local.stdout + local.stderr
    assert "ANSWER 42" in local.stdout
    assert not local.stdout.split("GCS ")[1].split()[0].endswith(":" + ray_head["address"].split(":")[1])
    assert "Token authentication is enabled for this Ray cluster" not in local.stderr
