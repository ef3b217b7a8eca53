"""`ProceduralServer`: a real `worldloom render-server` subprocess on loopback.

Used by tests, benchmarks and `worldloom generate` to get a render server without a
second terminal. It is a real process (not a thread) so that it can be SIGKILLed and
restarted like a crashing engine, which is how resume is tested.

The bound port is learnt from a port file the server writes atomically once its health
reports SERVING (reading stdout would need a drain thread, and a full pipe blocks the child).
The child watches this process and exits if it disappears, so no orphan servers outlive a
killed test run; `stop()`, the context manager and an atexit hook cover the orderly paths.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["ProceduralServer", "wait_for_serving"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


def wait_for_serving(address: str, timeout: float, service: str = "") -> None:
    """Block until the standard health service at `address` says SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"render server at {address} did not report SERVING within {timeout:.0f} s")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=min(1.0, remaining), wait_for_ready=True)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)


class ProceduralServer:
    """Start, kill, restart and stop a procedural render server process.

    >>> with ProceduralServer() as server:          # doctest: +SKIP
    ...     RenderClient(server.address).render_clip(clip)
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.env = env
        self.process: subprocess.Popen | None = None
        self.starts = 0  # how many processes this object has launched
        self._workdir = Path(tempfile.mkdtemp(prefix="worldloom-render-server-"))
        self._log_handle = None
        atexit.register(self._cleanup)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not started yet; call start() first")
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._workdir / "server.log"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ProceduralServer:
        if self.is_running():
            return self
        port_file = self._workdir / "port"
        port_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "unreal_bridge.cli",  # `worldloom render-server`, without the data engine's CLI
            "--host", self.host,
            "--port", str(self.port),
            "--port-file", str(port_file),
            "--parent-pid", str(os.getpid()),
            *self.extra_args,
        ]
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH", "")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log_handle = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=self._log_handle, stderr=subprocess.STDOUT, env=env, cwd=_REPO_ROOT)
        self.starts += 1
        deadline = time.monotonic() + self.startup_timeout
        while not port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"render server exited with code {self.process.returncode} during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"render server did not become ready within {self.startup_timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().strip())
        wait_for_serving(self.address, max(1.0, deadline - time.monotonic()))
        return self

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, like a crashing engine."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def restart(self) -> ProceduralServer:
        """Start a fresh process on the same port (clients reconnect to the same address)."""
        if self.is_running():
            self.stop()
        return self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ProceduralServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self._cleanup()
        atexit.unregister(self._cleanup)
