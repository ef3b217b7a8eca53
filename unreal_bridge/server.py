"""The gRPC render service, generic over a `RenderBackend`.

One servicer serves every renderer: the procedural PyBullet backend and the Unreal Engine
bridge differ only in the backend object plugged in. Who may call is `access.py`, what a request
resolves to is `open_request.py`, how a frame travels is `wire.py`; the transport rules live here once:

- health (`grpc.health.v1`) says NOT_SERVING until the backend is built, then SERVING;
- server reflection lists the service so stock tools (grpcurl, grpc_cli) can talk to it;
- one session at a time: a second OpenSession gets RESOURCE_EXHAUSTED instead of
  interleaving two worlds in one engine;
- frames stream as a `FrameHeader` then `Chunk`s of at most `max_chunk_bytes` per frame and
  pass, with `Heartbeat`s at least every `heartbeat_interval_ms` -- produced by a worker
  thread, so heartbeats keep flowing while the backend warms up or re-simulates to a resume
  point and the client's idle timeout never fires on a healthy server;
- a cancelled call stops the worker (client gone, nothing to render for);
- a bad manifest is INVALID_ARGUMENT with a one-line message naming the field and the fix;
- manifests are untrusted input: they are resolved on a small pool of their own threads, never
  on the gRPC threads, with a size limit and a time budget, and a request beyond the pool's
  capacity is refused at once -- so health and GetServerInfo keep answering under a flood of
  hostile manifests (benchmarks/drill_hostile.py);
- a session whose client vanished (its Render stream ended and nothing came back) is released
  after a short resume lease, not held for minutes.
"""
from __future__ import annotations

import inspect
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from contract.clip import ResolvedClip
from contract.errors import UserError
from unreal_bridge.access import check_bind_allowed, offered_token, token_matches
from unreal_bridge.backend import RenderBackend
from unreal_bridge.open_request import OpenedClip, resolve_request
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc
from unreal_bridge.wire import encode_frame_events

__all__ = [
    "PROTOCOL_VERSION",
    "SERVICE_NAME",
    "MAX_CHUNK_BYTES_LIMIT",
    "ServerConfig",
    "RenderServicer",
    "RenderServer",
]

log = logging.getLogger("worldloom.render.server")

PROTOCOL_VERSION = "1.0.0"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RenderService"].full_name  # worldloom.render.v1.RenderService
MAX_CHUNK_BYTES_LIMIT = 1 << 20  # 1 MiB: well under gRPC's default 4 MB message cap


@dataclass
class ServerConfig:
    """How the server binds and streams. Defaults are safe: loopback, no token needed.

    Limits (docs/render-protocol.md, "Limits"): `max_manifest_bytes`/`max_resolved_clip_bytes`
    cap a request's text, `resolve_workers` is how many manifests resolve at once (more are
    refused with RESOURCE_EXHAUSTED, never queued on the gRPC threads), and `resolve_timeout_s`
    is the time budget of one resolve.
    """

    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    auth_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_chunk_bytes: int = MAX_CHUNK_BYTES_LIMIT
    heartbeat_interval_ms: int = 500
    max_workers: int = 8
    # A session that was opened but never rendered, and then not used for this long, may be
    # taken over by a new client (a client that crashed must not lock the server forever).
    session_lease_s: float = 60.0
    # Once a Render stream has ended (completed, cancelled, or the client's connection died),
    # the session is kept only this long for the same client to resume; then it is closed.
    resume_lease_s: float = 10.0
    max_manifest_bytes: int = 2 << 20
    max_resolved_clip_bytes: int = 4 << 20
    resolve_workers: int = 2
    resolve_timeout_s: float = 30.0
    # How long a Render call waits for a previous Render of the same session to wind down.
    render_handover_s: float = 10.0
    queue_frames: int = 4  # frames the worker may run ahead of the network

    def __post_init__(self) -> None:
        if not 0 < self.max_chunk_bytes <= MAX_CHUNK_BYTES_LIMIT:
            raise UserError(f"max_chunk_bytes={self.max_chunk_bytes} is out of range; use 1..{MAX_CHUNK_BYTES_LIMIT}")
        if self.heartbeat_interval_ms <= 0:
            raise UserError(f"heartbeat_interval_ms={self.heartbeat_interval_ms} must be positive")
        if self.resolve_workers < 1 or self.resolve_timeout_s <= 0 or self.resume_lease_s < 0:
            raise UserError("resolve_workers must be >= 1, resolve_timeout_s > 0 and resume_lease_s >= 0")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UserError("--tls-cert and --tls-key go together; give both or neither")


# --------------------------------------------------------------------------------------------
# Errors


def _status_for(error: BaseException) -> grpc.StatusCode:
    """A backend may say how its failure should reach the client (e.g. a stalled editor is
    UNAVAILABLE, so the client restarts and resumes); otherwise it is INTERNAL (a bug)."""
    code = getattr(error, "grpc_status_code", None)
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.INTERNAL


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------------------------
# Sessions and the servicer


@dataclass
class _Session:
    session_id: str
    clip: ResolvedClip
    frame_count: int
    passes: list[str]
    opened_at: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    render_lock: threading.Lock = field(default_factory=threading.Lock)
    cancel_render: threading.Event = field(default_factory=threading.Event)
    streamed: bool = False  # a Render stream has ended: only the short resume lease applies now
    live_streams: int = 0  # Render calls whose RPC has not terminated yet
    expiry_armed: bool = False


_DONE = object()
_OPEN_GRACE_S = 2.0  # how long an OpenSession waits for a busy slot that may be freeing up


class RenderServicer(pb_grpc.RenderServiceServicer):
    """worldloom.render.v1.RenderService over one backend, one session at a time."""

    def __init__(
        self,
        config: ServerConfig,
        resolver: Callable[[pb.OpenSessionRequest], OpenedClip] = resolve_request,
    ) -> None:
        self.config = config
        self.resolver = resolver
        self.server_id = uuid.uuid4().hex
        self.backend: RenderBackend | None = None
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._opening = False
        # Manifests resolve here, off the gRPC threads; the semaphore refuses work beyond it.
        self._resolve_pool = futures.ThreadPoolExecutor(max_workers=config.resolve_workers, thread_name_prefix="resolve")
        self._resolve_slots = threading.BoundedSemaphore(config.resolve_workers)
        self._open_waiters = threading.BoundedSemaphore(2)
        self.refused = {"too_large": 0, "busy": 0, "timeout": 0, "invalid": 0}  # counters for logs and the drill

    # -- plumbing ---------------------------------------------------------------------------

    def attach_backend(self, backend: RenderBackend) -> None:
        self.backend = backend

    def _ready_backend(self, context: grpc.ServicerContext) -> RenderBackend:
        if self.backend is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "render server is still starting; retry when health is SERVING")
        return self.backend

    def _authorize(self, context: grpc.ServicerContext, request_token: str = "") -> None:
        expected = self.config.auth_token
        if not expected:
            return
        if not token_matches(offered_token(context.invocation_metadata(), request_token), expected):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "this render server needs an auth token; pass the server's --auth-token to the client")

    # -- rpcs ---------------------------------------------------------------------------------

    def GetServerInfo(self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext) -> pb.ServerInfo:
        self._authorize(context)
        backend = self._ready_backend(context)
        capabilities = list(dict.fromkeys([*backend.capabilities, "resume", "heartbeats"]))
        return pb.ServerInfo(
            protocol_version=PROTOCOL_VERSION,
            backend=backend.name,
            engine_version=backend.engine_version,
            passes=list(backend.passes),
            capabilities=capabilities,
            max_chunk_bytes=self.config.max_chunk_bytes,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            server_id=self.server_id,
        )

    def OpenSession(self, request: pb.OpenSessionRequest, context: grpc.ServicerContext) -> pb.OpenSessionResponse:
        self._authorize(context, request.auth_token)
        backend = self._ready_backend(context)
        opened = self._resolve_bounded(request, context)
        clip = opened.clip
        passes = list(clip.passes)
        unsupported = [name for name in passes if name not in backend.passes]
        if unsupported:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"manifest field 'passes' asks for {', '.join(unsupported)}, which backend {backend.name} "
                f"does not render; use a subset of {', '.join(backend.passes)}",
            )
        output = clip.output
        response = pb.OpenSessionResponse(
            resolved_clip_json=json.dumps(opened.document, sort_keys=True, separators=(",", ":")),
            resolved_sha256=clip.sha256,
            frame_count=output.frames,
            width=output.width,
            height=output.height,
            fps=output.fps,
            passes=passes,
        )
        if request.dry_run:
            return response
        self._reserve_slot(context)
        try:
            backend.open(clip)
        except UserError as error:
            self._release_slot()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.one_line())
        except Exception as error:  # a backend bug: say so, keep the server usable
            self._release_slot()
            log.exception("backend.open failed")
            context.abort(_status_for(error), f"backend {backend.name} failed to build the world: {_one_line(error)}")
        session = _Session(
            session_id=uuid.uuid4().hex, clip=clip, frame_count=response.frame_count, passes=passes
        )
        with self._lock:
            self._session, self._opening = session, False
        response.session_id = session.session_id
        log.info("session %s opened: %s (%d frames)", session.session_id, clip.key, session.frame_count)
        return response

    def _resolve_bounded(self, request: pb.OpenSessionRequest, context: grpc.ServicerContext) -> OpenedClip:
        """Resolve on the resolver pool within the size and time budget; refuse what does not fit.

        The calling gRPC thread only waits; a request that finds every resolver busy is refused
        at once, so at most `resolve_workers` gRPC threads ever wait here and the rest stay free
        for health checks and GetServerInfo.
        """
        source = request.WhichOneof("source")
        size = len(request.manifest_yaml) if source == "manifest_yaml" else len(request.resolved_clip_json)
        limit = self.config.max_manifest_bytes if source == "manifest_yaml" else self.config.max_resolved_clip_bytes
        if size > limit:
            self._count_refusal("too_large")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{source} is {size} bytes, more than this server's limit of {limit}; split the manifest")
        if not self._resolve_slots.acquire(blocking=False):
            self._count_refusal("busy")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"render server is already resolving {self.config.resolve_workers} manifests; retry in a moment")

        def job() -> OpenedClip:
            try:
                return self.resolver(request)
            finally:
                self._resolve_slots.release()

        try:
            future = self._resolve_pool.submit(job)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._resolve_slots.release()
            context.abort(grpc.StatusCode.UNAVAILABLE, "render server is stopping")
        try:
            return future.result(timeout=self.config.resolve_timeout_s)
        except futures.TimeoutError:
            # The resolver thread cannot be interrupted; it keeps its slot until it returns, so a
            # slow manifest costs one of `resolve_workers`, never a gRPC thread or unbounded work.
            self._count_refusal("timeout")
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                          f"resolving the manifest took longer than {self.config.resolve_timeout_s:g} s; make it smaller (fewer frames, simpler randomisation)")
        except UserError as error:
            self._count_refusal("invalid")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.one_line())
        except Exception as error:  # a resolver bug: one line to the client, the traceback to the log
            log.exception("resolving the manifest failed")
            context.abort(grpc.StatusCode.INTERNAL, f"resolving the manifest failed inside the server: {type(error).__name__}: {_one_line(error)}")
        raise AssertionError("unreachable")  # context.abort raises

    def _count_refusal(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1

    def _lease_left(self, session: _Session) -> float:
        """Seconds until an idle session may be taken over (<= 0: now); inf while a client streams."""
        if session.live_streams > 0:
            return float("inf")
        lease = self.config.resume_lease_s if session.streamed else self.config.session_lease_s
        return lease - (time.monotonic() - session.last_used)

    def _busy(self, context: grpc.ServicerContext) -> None:
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "render server is busy with another session (one session at a time); wait for it to close or start another server",
        )

    def _reserve_slot(self, context: grpc.ServicerContext) -> None:
        """Take the single session slot, waiting out the short resume lease of a vanished client.

        A client killed mid-stream is noticed by gRPC within moments (its connection closes), so
        an OpenSession that finds the slot held by a streaming session also waits a moment
        (`_OPEN_GRACE_S`) before refusing. At most two OpenSessions wait; the rest are refused.
        """
        now = time.monotonic()
        grace_until = now + _OPEN_GRACE_S
        deadline = now + self.config.resume_lease_s + 2 * _OPEN_GRACE_S
        waiting = False
        try:
            while True:
                with self._lock:
                    current = self._session
                    wait = None
                    now = time.monotonic()
                    if current is not None:
                        left = self._lease_left(current)
                        if left <= 0 and not current.render_lock.locked():
                            log.warning("session %s unused past its lease; handing the server to a new client", current.session_id)
                            self._close_backend_locked()
                            current = None
                        elif left <= 0:
                            wait = 0.05  # its last stream is still winding down
                        elif current.streamed and left <= self.config.resume_lease_s:
                            wait = left  # its client's stream ended: the server frees up within seconds
                        elif now < grace_until:
                            wait = 0.05  # maybe a stream whose client just died
                    elif self._opening and now < grace_until:
                        wait = 0.05
                    if not self._opening and current is None:
                        self._opening = True
                        return
                    if wait is None or now > deadline or not context.is_active():
                        self._busy(context)
                if not waiting:
                    if not self._open_waiters.acquire(blocking=False):
                        self._busy(context)
                    waiting = True
                time.sleep(min(max(wait, 0.01), 0.25))
        finally:
            if waiting:
                self._open_waiters.release()

    def _stream_ended(self, session: _Session) -> None:
        """RPC-termination callback of a Render: start the resume lease and arm its expiry."""
        session.last_used = time.monotonic()
        session.streamed = True
        with self._lock:
            session.live_streams -= 1
            if session.expiry_armed or self._session is not session:
                return
            session.expiry_armed = True
        self._arm_expiry(session, self.config.resume_lease_s)

    def _arm_expiry(self, session: _Session, delay: float) -> None:
        timer = threading.Timer(max(delay, 0.05), self._expire, args=(session,))
        timer.daemon = True
        timer.start()

    def _expire(self, session: _Session) -> None:
        """Close a session whose client did not come back within the resume lease."""
        with self._lock:
            if self._session is not session:
                session.expiry_armed = False
                return
            left = self._lease_left(session)
            if left <= 0 and not session.render_lock.locked():
                log.warning("session %s: its client went away %.0f s ago and did not resume; closing it",
                            session.session_id, self.config.resume_lease_s)
                self._close_backend_locked()
                session.expiry_armed = False
                return
        self._arm_expiry(session, min(max(left, 0.05), 1.0))  # streaming again (or winding down): look again later

    def _release_slot(self) -> None:
        with self._lock:
            self._opening = False

    def _close_backend_locked(self) -> None:
        self._session = None
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:  # closing must never wedge the server
                log.exception("backend.close failed")

    def _find_session(self, session_id: str, context: grpc.ServicerContext) -> _Session:
        with self._lock:
            session = self._session
        if session is None or session.session_id != session_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no open session {session_id!r} on this server; call OpenSession first")
        return session

    def CloseSession(self, request: pb.CloseSessionRequest, context: grpc.ServicerContext) -> pb.CloseSessionResponse:
        self._authorize(context)
        session = self._find_session(request.session_id, context)
        session.cancel_render.set()
        acquired = session.render_lock.acquire(timeout=self.config.render_handover_s)
        try:
            with self._lock:
                if self._session is session:
                    self._close_backend_locked()
        finally:
            if acquired:
                session.render_lock.release()
        log.info("session %s closed", session.session_id)
        return pb.CloseSessionResponse()

    def Render(self, request: pb.RenderRequest, context: grpc.ServicerContext) -> Iterator[pb.RenderEvent]:
        self._authorize(context)
        backend = self._ready_backend(context)
        session = self._find_session(request.session_id, context)
        passes = list(dict.fromkeys(request.passes)) or session.passes
        unknown = [name for name in passes if name not in session.passes]
        if unknown:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"passes {', '.join(unknown)} are not in this session; choose from {', '.join(session.passes)}",
            )
        start = int(request.start_frame)
        end = int(request.end_frame) or session.frame_count
        if not 0 <= start <= end <= session.frame_count:
            context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"frames [{start}, {end}) are outside the clip's [0, {session.frame_count})",
            )
        # A resumed call may arrive while the server is still noticing that the previous
        # stream's client vanished; wait for that stream to stop instead of rendering twice,
        # with heartbeats so the waiting client's idle timeout does not fire.
        interval = self.config.heartbeat_interval_ms / 1000.0
        give_up = time.monotonic() + self.config.render_handover_s
        while not session.render_lock.acquire(timeout=interval):
            if time.monotonic() > give_up or not context.is_active():
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "another Render call is streaming this session")
            yield pb.RenderEvent(
                heartbeat=pb.Heartbeat(frames_total=end - start, server_time=time.time(), message="waiting for the previous stream to stop")
            )
        session.cancel_render.clear()
        session.last_used = time.monotonic()
        with self._lock:
            session.live_streams += 1
        # When this RPC terminates for any reason -- done, cancelled, or the client's connection
        # died (SIGKILL) -- the session gets only the short resume lease (docs/render-protocol.md).
        context.add_callback(lambda: self._stream_ended(session))
        log.info("session %s: render frames [%d, %d) passes %s", session.session_id, start, end, ",".join(passes))
        try:
            yield from self._stream(backend, session, start, end, passes, context)
        finally:
            session.last_used = time.monotonic()
            session.render_lock.release()

    # -- streaming ----------------------------------------------------------------------------

    def _stream(
        self,
        backend: RenderBackend,
        session: _Session,
        start: int,
        end: int,
        passes: list[str],
        context: grpc.ServicerContext,
    ) -> Iterator[pb.RenderEvent]:
        stop = threading.Event()
        context.add_callback(stop.set)  # runs when the RPC ends for any reason, cancel included
        events: queue.Queue = queue.Queue(maxsize=self.config.queue_frames * (len(passes) * 8 + 1))
        progress = {"frames_done": 0, "message": "warming up" if start > 0 else "starting"}
        worker = threading.Thread(
            target=self._produce,
            args=(backend, session, start, end, passes, events, stop, progress),
            name=f"render-{session.session_id[:8]}",
            daemon=True,
        )
        worker.start()
        interval = self.config.heartbeat_interval_ms / 1000.0
        last_beat = -float("inf")

        def heartbeat() -> pb.RenderEvent:
            return pb.RenderEvent(
                heartbeat=pb.Heartbeat(
                    frames_done=progress["frames_done"],
                    frames_total=end - start,
                    server_time=time.time(),
                    message=progress["message"],
                )
            )

        try:
            while True:
                now = time.monotonic()
                if now - last_beat >= interval:
                    last_beat = now
                    yield heartbeat()
                try:
                    item = events.get(timeout=max(0.0, last_beat + interval - time.monotonic()))
                except queue.Empty:
                    if stop.is_set() or session.cancel_render.is_set():
                        context.abort(grpc.StatusCode.CANCELLED, "render cancelled (session closing)")
                    continue
                if item is _DONE:
                    yield heartbeat()
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, UserError):
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT, item.one_line())
                    context.abort(_status_for(item), f"backend {backend.name} failed: {_one_line(item)}")
                session.last_used = time.monotonic()
                yield item
        finally:
            stop.set()
            worker.join()

    def _produce(
        self,
        backend: RenderBackend,
        session: _Session,
        start: int,
        end: int,
        passes: list[str],
        events: queue.Queue,
        stop: threading.Event,
        progress: dict,
    ) -> None:
        """Worker thread: pull frames from the backend, encode, and queue the events."""

        def put(item: object) -> bool:
            while not (stop.is_set() or session.cancel_render.is_set()):
                try:
                    events.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        frames = None
        try:
            if "passes" in inspect.signature(backend.frames).parameters:
                frames = backend.frames(start, end, passes=passes)
            else:
                frames = backend.frames(start, end)
            for frame in frames:
                progress["message"] = "rendering"
                for event in encode_frame_events(frame, passes, self.config.max_chunk_bytes):
                    if not put(event):
                        return
                progress["frames_done"] += 1
            put(_DONE)
        except BaseException as error:  # handed to the streaming thread, which maps it to a status
            if not (stop.is_set() or session.cancel_render.is_set()):
                log.exception("render worker failed")
            put(error)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()


# --------------------------------------------------------------------------------------------
# The server process


class RenderServer:
    """A gRPC server with the render service, health and reflection, on one port.

    `start()` binds and answers health NOT_SERVING; `attach_backend()` flips it to SERVING.
    Building the backend in between (loading a level, importing PyBullet) is exactly the
    window in which clients must wait rather than fail.
    """

    def __init__(
        self,
        config: ServerConfig,
        resolver: Callable[[pb.OpenSessionRequest], OpenedClip] = resolve_request,
        servicer: RenderServicer | None = None,
    ) -> None:
        check_bind_allowed(config.host, config.auth_token)
        self.config = config
        self.servicer = servicer or RenderServicer(config, resolver)
        self.health = health.HealthServicer()
        self.port: int | None = None
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{host}:{self.port}"

    def start(self) -> int:
        options = [
            ("grpc.so_reuseport", 0),  # never share a port with a second server by accident
            ("grpc.max_send_message_length", 4 * MAX_CHUNK_BYTES_LIMIT),
            ("grpc.max_receive_message_length", 4 * MAX_CHUNK_BYTES_LIMIT),
        ]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.config.max_workers), options=options)
        pb_grpc.add_RenderServiceServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        host = self.config.host
        bind = f"[{host}]:{self.config.port}" if ":" in host and not host.startswith("[") else f"{host}:{self.config.port}"
        try:
            if self.config.tls_cert is not None and self.config.tls_key is not None:
                credentials = grpc.ssl_server_credentials(
                    [(Path(self.config.tls_key).read_bytes(), Path(self.config.tls_cert).read_bytes())]
                )
                port = server.add_secure_port(bind, credentials)
            else:
                port = server.add_insecure_port(bind)
        except RuntimeError:
            raise UserError(f"cannot bind {bind}: the address is in use or not local (another render server?); use another --port or --port 0") from None
        if port == 0:
            raise UserError(f"cannot bind {bind}: the address is in use or not local; try another --port or --port 0")
        server.start()
        self._server, self.port = server, port
        return port

    def attach_backend(self, backend: RenderBackend) -> None:
        self.servicer.attach_backend(backend)
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None = 1.0) -> None:
        if self._server is None:
            return
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self.servicer._resolve_pool.shutdown(wait=False, cancel_futures=True)
        with self.servicer._lock:
            self.servicer._close_backend_locked()
        self._server = None

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout) if self._server is not None else True
