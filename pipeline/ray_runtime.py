"""How every worldloom command starts or joins Ray: one place, one rule.

The rule: a private local instance by default (`address="local"`), a cluster only on purpose
(`--ray-address HOST:PORT` or `$RAY_ADDRESS`). A bare `ray.init()` would silently join whatever
Ray happens to run on the machine (another user's job, a test session), which is how a training
run once died inside a stranger's cluster.

Token authentication (Ray 2.60): `ray start --head` turns it on when a token exists
(`~/.ray/auth_token`, which any local `ray.init()` creates), but a client joining *by address*
sends no token unless `RAY_AUTH_MODE=token`. So when joining, if the user has a token where Ray
looks for one (`RAY_AUTH_TOKEN`, the file named by `RAY_AUTH_TOKEN_PATH`, or Ray's default token
file) and has not chosen a mode, we choose `token`; Ray's own loader then reads the token from
those places. A cluster that still refuses gets one line naming what to set.

Local instances set `RAY_AUTH_MODE=token` explicitly (Ray's default for a new local instance),
which keeps auth on and only silences the multi-line banner Ray prints when the mode is implicit.
"""
from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.errors import UserError

AUTH_MODE = "RAY_AUTH_MODE"
AUTH_TOKEN = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
FIX_AUTH = (f"set {AUTH_TOKEN} to the cluster's token (print it on the head with `ray get-auth-token`) "
            f"or {AUTH_TOKEN_PATH} to a file holding it")


@dataclass(frozen=True)
class RayTarget:
    """Where a command's Ray lives: `address` is None for a private local instance."""

    address: str | None
    source: str  # "--ray-address", "$RAY_ADDRESS" or "local"

    @property
    def is_local(self) -> bool:
        return self.address is None


def resolve_address(address: str | None) -> RayTarget:
    """The flag wins, then $RAY_ADDRESS, then a local instance ("local"/"" mean local too)."""
    if address:
        chosen, source = address, "--ray-address"
    elif os.environ.get("RAY_ADDRESS"):
        chosen, source = os.environ["RAY_ADDRESS"], "$RAY_ADDRESS"
    else:
        return RayTarget(None, "local")
    if chosen.strip().lower() == "local":
        return RayTarget(None, "local")
    return RayTarget(chosen.strip(), source)


def default_token_path() -> Path:
    """Ray's default token file (ray/_private/authentication/authentication_token_setup.py)."""
    return Path.home() / ".ray" / "auth_token"


def token_available() -> str | None:
    """Name where a token for joining a cluster would come from, or None when there is none."""
    if os.environ.get(AUTH_TOKEN, "").strip():
        return f"${AUTH_TOKEN}"
    named = os.environ.get(AUTH_TOKEN_PATH)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise UserError(f"${AUTH_TOKEN_PATH}={named}: no such file", hint="point it at the cluster's token file")
        return str(path)
    if default_token_path().is_file():
        return str(default_token_path())
    return None


def _split(address: str, source: str) -> tuple[str, int] | None:
    """host:port of a plain GCS address; None for forms we do not probe (ray://, auto)."""
    if "://" in address or address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"{source} {address}: not a Ray address", hint="use HOST:PORT of the head, e.g. 10.0.0.5:6379")
    return host.strip("[]"), int(port)


def _probe(address: str, source: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, not minutes, when nothing listens there (Ray retries a dead GCS for a long time)."""
    parts = _split(address, source)
    if parts is None:
        return
    try:
        with socket.create_connection(parts, timeout=timeout_s):
            pass
    except OSError as error:
        raise UserError(f"{source} {address}: no Ray cluster answers there ({error.strerror or error})",
                        hint="start one with `ray start --head --port PORT`, or drop the address to use a local instance") from None


def _is_auth_error(error: BaseException | None) -> bool:
    """Ray wraps the GCS's "Unauthenticated" reply in a ConnectionError; look down the cause chain."""
    import ray.exceptions

    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, ray.exceptions.AuthenticationError) or "uthenticat" in str(error) or "auth token" in str(error).lower():
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _use_token_mode() -> None:
    """Set RAY_AUTH_MODE=token and make an already imported Ray see it (Ray caches its config
    at import; its own `_enable_token_auth` refreshes it the same way)."""
    os.environ[AUTH_MODE] = "token"
    try:
        from ray._raylet import Config

        Config.initialize("")
    except Exception:  # an older/newer Ray without this hook reads the variable at init anyway
        pass


def init_ray(address: str | None = None, *, num_cpus: float | None = None, **local_options: Any) -> bool:
    """Reuse this process's Ray, else join the cluster the user named, else start a local instance.

    Returns True when this call started or joined Ray (the caller may shut it down), False when
    Ray was already initialised here (tests, notebooks, the demo). `local_options` are passed to
    `ray.init` for a local instance only (a cluster's resources are the cluster's).
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    target = resolve_address(address)
    if target.is_local:
        if AUTH_MODE not in os.environ:
            _use_token_mode()  # Ray's default for a new instance, minus the banner
        options = {"include_dashboard": False, **local_options}
        ray.init(address="local", num_cpus=int(num_cpus) if num_cpus else (os.cpu_count() or 1),
                 log_to_driver=False, configure_logging=False, **options)
        return True
    join(target)
    return True


def local_cpus(requested: int | None = None) -> int:
    """Logical CPUs of a local Ray a pipeline command starts: what was asked, else the machine's cores."""
    return int(requested or os.cpu_count() or 1)


def ensure_ray(address: str | None, *, cpus: int | None = None, at_least: float = 0.0) -> bool:
    """Start or join Ray for a pipeline command (generate, curate): `init_ray` with the CPU rule they share.

    A local instance gets `cpus` logical CPUs (default: the machine's cores), raised to `at_least`
    when the work declares more (generate's `--workers` asking for more render servers than cores):
    the user chose to oversubscribe, and a task or actor that cannot be scheduled would wait forever.
    True when this call started or joined Ray (the caller shuts it down), as `init_ray`.
    """
    return init_ray(address, num_cpus=max(float(local_cpus(cpus)), float(math.ceil(at_least))))


def cpus_short(needed: float, *, free: bool = True) -> float | None:
    """Ray's CPUs (free ones, or the cluster's total) when they are fewer than `needed`, else None.

    Why: Ray waits forever for resources it does not have; callers turn this into one line.
    """
    import ray

    resources = ray.available_resources() if free else ray.cluster_resources()
    available = float(resources.get("CPU", 0.0))
    return available if needed > available + 1e-9 else None


def join(target: RayTarget) -> None:
    """Join `target.address` with a token when one is available; one line when the cluster refuses."""
    import ray

    assert target.address is not None
    _probe(target.address, target.source)
    if AUTH_MODE not in os.environ and token_available() is not None:
        _use_token_mode()  # Ray sends no token by address unless told to
    try:
        ray.init(address=target.address, log_to_driver=False, configure_logging=False)
    except Exception as error:  # Ray raises ConnectionError, RuntimeError or AuthenticationError here
        if _is_auth_error(error):
            mode = os.environ.get(AUTH_MODE, "unset")
            where = token_available()
            sent = f"sent the token from {where}" if mode == "token" and where else "sent no token"
            raise UserError(f"{target.source} {target.address}: the Ray cluster refused this client "
                            f"(token authentication; {sent}, RAY_AUTH_MODE={mode})", hint=FIX_AUTH) from None
        raise UserError(f"{target.source} {target.address}: could not join the Ray cluster "
                        f"({str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__})",
                        hint="check the address (`ray status` on the head prints it) and that the Ray versions match") from None

