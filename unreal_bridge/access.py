"""Who may reach a render server: the bind policy and the Bearer token check.

A render server builds worlds from whatever manifest it is sent; like Unreal's Remote Control
port it must not be reachable from a network without authentication. The token travels as gRPC
metadata `authorization: Bearer <token>` (or, for old clients, in the request body) and is
compared in constant time.
"""
from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable

from contract.errors import UserError

AUTH_METADATA_KEY = "authorization"  # value "Bearer <token>"
_BEARER = "Bearer "


def _is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, None)
    except socket.gaierror as error:
        raise UserError(f"--host {host!r} does not resolve ({error.strerror}); use an IP address such as 127.0.0.1") from None
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_bind_allowed(host: str, auth_token: str | None) -> None:
    """Refuse to expose the control port beyond loopback without a token.

    A render server builds worlds from whatever manifest it is sent; like Unreal's Remote
    Control port it must not be reachable from a network without authentication.
    """
    if not _is_loopback(host) and not auth_token:
        raise UserError(
            f"refusing to bind non-loopback address {host!r} without authentication; "
            "pass --auth-token TOKEN (and preferably --tls-cert/--tls-key) or bind --host 127.0.0.1"
        )


def offered_token(metadata: Iterable[tuple[str, str]], request_token: str = "") -> str:
    """The token a call offers: its `authorization: Bearer` metadata, else the request field."""
    offered = request_token
    for key, value in metadata:
        if key == AUTH_METADATA_KEY and value.startswith(_BEARER):
            offered = value[len(_BEARER):]
    return offered


def token_matches(offered: str, expected: str) -> bool:
    """Constant-time comparison (a timing side channel must not reveal the token)."""
    return bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())
