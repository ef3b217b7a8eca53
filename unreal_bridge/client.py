"""`RenderClient`: render a clip from any worldloom.render.v1 server, surviving server crashes.

What the client does that a bare stub does not (each lesson paid for by CARLA/AirSim users):

- **Deadlines by kind of call.** Cheap calls (server info, close) get a short deadline;
  opening a session (a level load) a long one; a render stream gets no total deadline but an
  *idle* timeout that every message -- frames or the server's heartbeats -- resets, so a long
  clip never times out while a hung server is noticed in `idle_timeout` seconds.
- **Integrity.** Frames are reassembled from chunks and checked against the header's sha256;
  a mismatch is an error, never silently stored.
- **Resume.** On a broken stream the client reconnects with exponential backoff and asks for
  the first frame it does not have. If the server restarted (its `server_id` changed), the
  session is re-opened from the *resolved* clip and the resolved hash must be unchanged.
- **Clear messages.** gRPC status codes become one-line `UserError`s: "render server at
  HOST:PORT is not reachable", "server speaks protocol 2.x, this client 1.x", ...
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from contract.errors import UserError
from contract.sample import ACTION_DIM
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc
from unreal_bridge.wire import PASS_LAYOUT, RAW_ENCODING

__all__ = ["RenderClient", "RenderedClip", "FrameIntegrityError", "CLIENT_PROTOCOL_VERSION", "AUTH_TOKEN_ENV", "token_from_env"]

log = logging.getLogger("worldloom.render.client")

CLIENT_PROTOCOL_VERSION = "1.0.0"
#: The one environment variable that carries the render token, for servers and clients alike.
AUTH_TOKEN_ENV = "WORLDLOOM_AUTH_TOKEN"
#: The server's old name for it; still read, with a deprecation warning.
DEPRECATED_TOKEN_ENV = "WORLDLOOM_RENDER_TOKEN"


def token_from_env(environ: dict[str, str] | None = None) -> str | None:
    """$WORLDLOOM_AUTH_TOKEN, else the deprecated $WORLDLOOM_RENDER_TOKEN (with a warning), else None."""
    environ = os.environ if environ is None else environ
    token = environ.get(AUTH_TOKEN_ENV, "").strip()
    if token:
        return token
    old = environ.get(DEPRECATED_TOKEN_ENV, "").strip()
    if old:
        log.warning("%s is deprecated; set %s instead (one name for servers and clients)", DEPRECATED_TOKEN_ENV, AUTH_TOKEN_ENV)
        return old
    return None
# Status codes after which reconnecting and resuming can help.
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # only for a Render handover on the same server
}


class FrameIntegrityError(UserError):
    """A reassembled frame does not match the sha256 its header promised."""


@dataclass
class RenderedClip:
    """A whole clip as received: pixels, camera state per frame and the resolved clip."""

    resolved_clip: dict
    resolved_sha256: str
    server_info: pb.ServerInfo
    rgb: np.ndarray | None  # (T, H, W, 3) uint8
    depth: np.ndarray | None  # (T, H, W) float32, planar z metres
    segmentation: np.ndarray | None  # (T, H, W) int32
    camera_to_world: np.ndarray  # (T, 4, 4) float64, OpenCV, metres
    intrinsics: np.ndarray  # (3, 3) float64
    actions: np.ndarray  # (T, 8) float32
    sim_time: np.ndarray  # (T,) float64
    resumed_from: list[int] = field(default_factory=list)  # start_frame of every resumed Render call
    frame_sha256: dict[str, list[str]] = field(default_factory=dict)  # pass -> per-frame payload hash

    @property
    def frame_count(self) -> int:
        return int(self.camera_to_world.shape[0])


@dataclass
class _Assembly:
    """One frame-pass being reassembled from chunks."""

    header: pb.FrameHeader
    buffer: bytearray
    received: int = 0


class _IdleWatchdog:
    """Cancels a streaming call when no message arrived for `timeout` seconds."""

    def __init__(self, call: grpc.Call, timeout: float) -> None:
        self.call, self.timeout = call, timeout
        self.last = time.monotonic()
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="render-idle-watchdog", daemon=True)
        self._thread.start()

    def feed(self) -> None:
        self.last = time.monotonic()

    def _run(self) -> None:
        while not self._done.wait(min(0.25, self.timeout / 4)):
            if time.monotonic() - self.last > self.timeout:
                self.fired = True
                self.call.cancel()
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class RenderClient:
    """Client of a worldloom.render.v1 server (procedural or Unreal).

    `max_retries` bounds consecutive failed reconnect attempts (backoff 0.25 s, 0.5 s, 1 s, ...
    capped at `max_backoff`); the count resets whenever frames arrive again. Without an
    `auth_token` the client uses $WORLDLOOM_AUTH_TOKEN when it is set.
    """

    def __init__(
        self,
        address: str,
        *,
        auth_token: str | None = None,
        connect_timeout: float = 5.0,
        open_timeout: float = 120.0,
        idle_timeout: float = 30.0,
        max_retries: int = 5,
        root_certificates: bytes | None = None,
        initial_backoff: float = 0.25,
        max_backoff: float = 8.0,
    ) -> None:
        self.address = address
        self.auth_token = auth_token if auth_token else token_from_env()
        self.connect_timeout = connect_timeout
        self.open_timeout = open_timeout
        self.idle_timeout = idle_timeout
        self.max_retries = max_retries
        self.root_certificates = root_certificates
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.RenderServiceStub | None = None
        self.reconnects = 0  # total reconnects made by this client (observable for tests and logs)

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> pb_grpc.RenderServiceStub:
        if self._stub is None:
            options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.enable_retries", 0)]
            if self.root_certificates is not None:
                credentials = grpc.ssl_channel_credentials(root_certificates=self.root_certificates)
                self._channel = grpc.secure_channel(self.address, credentials, options=options)
            else:
                self._channel = grpc.insecure_channel(self.address, options=options)
            self._stub = pb_grpc.RenderServiceStub(self._channel)
        return self._stub

    def _reset_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def close(self) -> None:
        self._reset_channel()

    def __enter__(self) -> RenderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.auth_token}"),) if self.auth_token else ()

    def _explain(self, error: grpc.RpcError, doing: str) -> UserError:
        """One line a user can act on, for a gRPC failure."""
        code, details = error.code(), _one_line(error.details() or "")
        where = f"render server at {self.address}"
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and doing != "open":
            return UserError(f"{where} is not reachable ({doing}: {details or code.name}); start it with `worldloom render-server` or check the address")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return UserError(f"{where} did not open the session within {self.open_timeout:.0f} s; raise open_timeout for slow level loads")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return UserError(f"{where} rejected the manifest: {details}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return UserError(f"{where} is busy: {details}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return UserError(f"{where} refused the call: {details}")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return UserError(f"{where} does not speak worldloom.render.v1 ({details}); is it a render server?")
        return UserError(f"{where} failed while {doing}: {code.name}: {details}")

    # -- cheap calls --------------------------------------------------------------------------

    def _get_server_info(self) -> pb.ServerInfo:
        """GetServerInfo within connect_timeout, waiting out a server that is still starting.

        A (re)started server accepts connections before its backend is built (health
        NOT_SERVING, calls UNAVAILABLE), so UNAVAILABLE is retried until the deadline.
        """
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                return self._connect().GetServerInfo(
                    pb.GetServerInfoRequest(),
                    timeout=max(0.1, deadline - time.monotonic()),
                    metadata=self._metadata(),
                    wait_for_ready=True,
                )
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise

    def server_info(self) -> pb.ServerInfo:
        """Server identity and limits; also checks that the protocol major versions match."""
        try:
            info = self._get_server_info()
        except grpc.RpcError as error:
            raise self._explain(error, "asking for server info") from None
        server_major = info.protocol_version.split(".")[0]
        client_major = CLIENT_PROTOCOL_VERSION.split(".")[0]
        if server_major != client_major:
            raise UserError(
                f"render server at {self.address} speaks protocol {server_major}.x, this client {client_major}.x; "
                "use a client and server of the same major version"
            )
        return info

    def open_session(self, request: pb.OpenSessionRequest) -> pb.OpenSessionResponse:
        """OpenSession with the long deadline (level loading may take minutes)."""
        if self.auth_token:
            request.auth_token = self.auth_token
        try:
            return self._connect().OpenSession(
                request, timeout=self.open_timeout, metadata=self._metadata(), wait_for_ready=True
            )
        except grpc.RpcError as error:
            raise self._explain(error, "open") from None

    def close_session(self, session_id: str) -> None:
        """Best effort: a session on a dead server is gone anyway."""
        try:
            self._connect().CloseSession(
                pb.CloseSessionRequest(session_id=session_id), timeout=self.connect_timeout, metadata=self._metadata()
            )
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                log.warning("closing session %s failed: %s", session_id, _one_line(error.details() or ""))

    def resolve(self, clip_or_manifest: dict | str, *, scene: str | None = None, clip_index: int = 0) -> dict:
        """Dry run: the server validates and resolves; returns the resolved clip."""
        request = _open_request(clip_or_manifest, scene, clip_index)
        request.dry_run = True
        return json.loads(self.open_session(request).resolved_clip_json)

    # -- the render loop ----------------------------------------------------------------------

    def render_clip(
        self,
        clip: dict | str,
        *,
        scene: str | None = None,
        clip_index: int = 0,
        passes: list[str] | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> RenderedClip:
        """Render a whole clip (a resolved clip dict, or manifest YAML text plus scene/clip)."""
        info = self.server_info()
        opened = self.open_session(_open_request(clip, scene, clip_index))
        resolved_json, resolved_sha = opened.resolved_clip_json, opened.resolved_sha256
        wanted = list(dict.fromkeys(passes)) if passes else list(opened.passes)
        missing = [name for name in wanted if name not in opened.passes]
        if missing:
            self.close_session(opened.session_id)
            raise UserError(f"passes {', '.join(missing)} are not in the clip; it has {', '.join(opened.passes)}")
        count, height, width = opened.frame_count, opened.height, opened.width
        arrays: dict[str, np.ndarray] = {}
        for name in wanted:
            dtype, channels = PASS_LAYOUT[name]
            shape = (count, height, width, channels) if channels > 1 else (count, height, width)
            arrays[name] = np.zeros(shape, dtype=dtype)
        hashes = {name: [""] * count for name in wanted}
        poses = np.zeros((count, 4, 4), dtype=np.float64)
        actions = np.zeros((count, ACTION_DIM), dtype=np.float32)
        sim_time = np.zeros(count, dtype=np.float64)
        intrinsics = np.eye(3)
        resumed_from: list[int] = []

        session_id, server_id = opened.session_id, info.server_id
        # Heartbeats arrive every heartbeat_interval_ms; an idle timeout shorter than a few
        # intervals would fire on a healthy server.
        idle_timeout = max(self.idle_timeout, 3 * info.heartbeat_interval_ms / 1000.0)
        next_frame = 0  # first frame not yet complete: where a resumed call starts
        failures = 0
        try:
            while next_frame < count:
                try:
                    next_frame = self._stream_frames(
                        session_id, next_frame, count, wanted, arrays, hashes, poses, actions, sim_time,
                        intrinsics, on_frame, idle_timeout,
                    )
                    continue
                except _StreamBroken as broken:
                    if broken.session_lost:
                        server_id = ""  # the server let the session go (resume lease over): open a new one
                    if broken.next_frame > next_frame:
                        failures = 0
                    next_frame = broken.next_frame
                    failures += 1
                    if failures > self.max_retries:
                        raise UserError(
                            f"render server at {self.address} failed {self.max_retries} times in a row "
                            f"(last: {broken.reason}); {next_frame}/{count} frames were received"
                        ) from None
                    log.warning("render stream broke at frame %d (%s); reconnecting", next_frame, broken.reason)
                next_frame_before = next_frame
                session_id, server_id = self._reconnect(
                    failures, session_id, server_id, resolved_json, resolved_sha
                )
                self.reconnects += 1
                resumed_from.append(next_frame_before)
        finally:
            if session_id:
                self.close_session(session_id)
        return RenderedClip(
            resolved_clip=json.loads(resolved_json),
            resolved_sha256=resolved_sha,
            server_info=info,
            rgb=arrays.get("rgb"),
            depth=arrays.get("depth"),
            segmentation=arrays.get("segmentation"),
            camera_to_world=poses,
            intrinsics=intrinsics,
            actions=actions,
            sim_time=sim_time,
            resumed_from=resumed_from,
            frame_sha256=hashes,
        )

    def _reconnect(
        self, attempt: int, session_id: str, server_id: str, resolved_json: str, resolved_sha: str
    ) -> tuple[str, str]:
        """Back off, find the server again, and get a session for the same resolved clip."""
        delay = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        time.sleep(delay)
        self._reset_channel()
        try:
            info = self._get_server_info()
        except grpc.RpcError as error:
            if error.code() in _RETRYABLE:
                return session_id, server_id  # still down: the next Render attempt fails fast and backs off again
            raise self._explain(error, "reconnecting") from None
        if info.server_id == server_id:
            return session_id, server_id  # same process (a network blip): the session is still open
        if server_id:
            log.warning("render server at %s restarted; re-opening the session", self.address)
        else:
            log.warning("render server at %s no longer holds the session; re-opening it", self.address)
        reopened = self.open_session(pb.OpenSessionRequest(resolved_clip_json=resolved_json))
        if reopened.resolved_sha256 != resolved_sha:
            self.close_session(reopened.session_id)
            raise UserError(
                f"render server at {self.address} resolved the clip to {reopened.resolved_sha256[:12]}… after a restart, "
                f"not {resolved_sha[:12]}…; its version changed mid-clip, re-render the clip from the start"
            )
        return reopened.session_id, info.server_id

    def _stream_frames(
        self,
        session_id: str,
        start: int,
        count: int,
        passes: list[str],
        arrays: dict[str, np.ndarray],
        hashes: dict[str, list[str]],
        poses: np.ndarray,
        actions: np.ndarray,
        sim_time: np.ndarray,
        intrinsics: np.ndarray,
        on_frame: Callable[[int], None] | None,
        idle_timeout: float,
    ) -> int:
        """One Render call from `start`; returns the first frame still missing (== count when done)."""
        request = pb.RenderRequest(session_id=session_id, start_frame=start, end_frame=count, passes=passes)
        try:
            call = self._connect().Render(request, metadata=self._metadata())
        except grpc.RpcError as error:  # pragma: no cover - Render errors surface while iterating
            raise _StreamBroken(_one_line(error.details() or ""), start) from None
        watchdog = _IdleWatchdog(call, idle_timeout)
        next_frame = start
        pending: dict[str, _Assembly] = {}
        done_passes: set[str] = set()
        try:
            for event in call:
                watchdog.feed()
                kind = event.WhichOneof("event")
                if kind == "heartbeat":
                    continue
                if kind == "header":
                    header = event.header
                    name = getattr(header, "pass")
                    if header.frame_index != next_frame or name not in arrays:
                        raise FrameIntegrityError(
                            f"render server at {self.address} sent frame {header.frame_index} pass {name!r} "
                            f"while frame {next_frame} was expected; the server breaks the stream order"
                        )
                    self._check_layout(header, arrays[name])
                    pending[name] = _Assembly(header=header, buffer=bytearray(header.byte_size))
                    continue
                chunk = event.chunk
                name = getattr(chunk, "pass")
                assembly = pending.get(name)
                if assembly is None or chunk.frame_index != next_frame:
                    raise FrameIntegrityError(
                        f"render server at {self.address} sent a chunk of frame {chunk.frame_index} pass {name!r} without its header"
                    )
                end = chunk.offset + len(chunk.data)
                if end > len(assembly.buffer):
                    raise FrameIntegrityError(
                        f"render server at {self.address} sent {end} bytes for frame {next_frame} pass {name!r}, "
                        f"more than the {len(assembly.buffer)} its header announced"
                    )
                assembly.buffer[chunk.offset : end] = chunk.data
                assembly.received += len(chunk.data)
                if assembly.received < len(assembly.buffer):
                    continue
                self._finish_pass(assembly, arrays, hashes)
                del pending[name]
                done_passes.add(name)
                if done_passes == set(passes):
                    header = assembly.header
                    poses[next_frame] = np.asarray(header.camera_to_world, dtype=np.float64).reshape(4, 4)
                    actions[next_frame] = np.asarray(header.action, dtype=np.float32)[:ACTION_DIM]
                    sim_time[next_frame] = header.sim_time
                    k = header.intrinsics
                    intrinsics[:] = [[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]]
                    done_passes.clear()
                    next_frame += 1
                    if on_frame is not None:
                        on_frame(next_frame - 1)
        except grpc.RpcError as error:
            code = error.code()
            if watchdog.fired:
                raise _StreamBroken(f"no message for {idle_timeout:g} s (idle timeout)", next_frame) from None
            if code in _RETRYABLE:
                raise _StreamBroken(f"{code.name}: {_one_line(error.details() or '')}", next_frame) from None
            if code == grpc.StatusCode.NOT_FOUND:  # session lost (e.g. server restarted between calls)
                raise _StreamBroken("session not found on the server", next_frame, session_lost=True) from None
            raise self._explain(error, "rendering") from None
        finally:
            watchdog.stop()
            call.cancel()
        if next_frame < count:
            raise _StreamBroken(f"stream ended at frame {next_frame} of {count}", next_frame)
        return next_frame

    def _check_layout(self, header: pb.FrameHeader, target: np.ndarray) -> None:
        name = getattr(header, "pass")
        dtype, channels = PASS_LAYOUT[name]
        expected = (target.shape[1], target.shape[2], dtype.name, channels, RAW_ENCODING)
        got = (header.height, header.width, header.dtype, header.channels, header.encoding)
        if got != expected or header.byte_size != target[0].nbytes:
            raise FrameIntegrityError(
                f"render server at {self.address} sent pass {name!r} as (h, w, dtype, channels, encoding)={got}; "
                f"the session promised {expected}"
            )

    def _finish_pass(self, assembly: _Assembly, arrays: dict[str, np.ndarray], hashes: dict[str, list[str]]) -> None:
        header = assembly.header
        name = getattr(header, "pass")
        digest = hashlib.sha256(assembly.buffer).hexdigest()
        if digest != header.sha256:
            raise FrameIntegrityError(
                f"frame {header.frame_index} pass {name!r} from render server at {self.address} failed its sha256 check "
                f"(received {digest[:12]}…, header says {header.sha256[:12]}…); the transport or server corrupted it"
            )
        target = arrays[name]
        target[header.frame_index] = np.frombuffer(bytes(assembly.buffer), dtype=target.dtype.newbyteorder("<")).reshape(
            target.shape[1:]
        )
        hashes[name][header.frame_index] = digest


class _StreamBroken(Exception):
    """A render stream ended early for a reason a reconnect may cure; `next_frame` is the first missing frame."""

    def __init__(self, reason: str, next_frame: int, *, session_lost: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.next_frame, self.session_lost = reason, next_frame, session_lost


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _open_request(clip: dict | str, scene: str | None, clip_index: int) -> pb.OpenSessionRequest:
    if isinstance(clip, dict):
        return pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip, sort_keys=True, separators=(",", ":")))
    if isinstance(clip, str):
        return pb.OpenSessionRequest(manifest_yaml=clip, scene=scene or "", clip_index=clip_index)
    raise TypeError(f"render_clip takes a resolved clip dict or manifest YAML text, not {type(clip).__name__}")
