"""The rules of worldloom.render.v1 that a render server must keep, one function each.

The proto states the messages; these rules state the behaviour (see the comments in
render.proto and docs/architecture.md, "Render protocol"). Each rule's failure message names
what was expected and what the server did, so a server author can fix it from the report alone.
"""
from __future__ import annotations

import hashlib
import json
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from contract.clip import ResolvedClip
from contract.errors import UserError
from unreal_bridge.conformance.builtin_manifest import BAD_FIELD_MANIFEST, BROKEN_YAML
from unreal_bridge.conformance.runner import CheckContext, Rule, RuleFailed, RuleSkipped
from unreal_bridge.conformance.stream import ReceivedStream, open_and_cancel, read_render
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb

SERVICE_NAME = "worldloom.render.v1.RenderService"
MAX_CHUNK_LIMIT = 1 << 20
KNOWN_PASSES = {"rgb": ("uint8", 3), "depth": ("float32", 1), "segmentation": ("int32", 1)}
POSE_ATOL_M = 1e-3  # 1 mm: far below one frame of motion, far above float round-off
ROTATION_ATOL = 1e-4
HANDOVER_S = 15.0  # how long a server may take to notice a cancelled stream
# Accepted sim_time of frame 0, in steps (see the `sim_time` rule and docs/architecture.md, "Simulation time").
SIM_TIME_ORIGINS = (0,)  # frame i is at i * step (render.proto, docs/architecture.md)


def canonical_sha256(clip: dict) -> str:
    """The contract's clip hash: sha256 of canonical JSON, the `sha256` field excluded."""
    body = {key: value for key, value in clip.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _expect_code(ctx: CheckContext, call, expected: grpc.StatusCode, what: str) -> str:
    try:
        call()
    except grpc.RpcError as error:
        if error.code() != expected:
            raise RuleFailed(f"{what}: expected {expected.name}, got {error.code().name} ({error.details()})") from None
        return error.details() or ""
    raise RuleFailed(f"{what}: expected {expected.name}, but the call succeeded")


def _render(ctx: CheckContext, start: int = 0, end: int = 0, passes=()) -> ReceivedStream:
    request = pb.RenderRequest(session_id=ctx.session.session_id, start_frame=start, end_frame=end, passes=list(passes))
    return read_render(ctx.stub, request, metadata=ctx.metadata, timeout_s=ctx.options.render_timeout_s)


# ------------------------------------------------------------------------------ service level


def server_info(ctx: CheckContext) -> str:
    try:
        grpc.channel_ready_future(ctx.channel).result(timeout=ctx.options.connect_timeout_s)
    except grpc.FutureTimeoutError:
        raise RuleFailed(f"could not connect to {ctx.address} within {ctx.options.connect_timeout_s:.0f} s; is the server running?") from None
    info = ctx.stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=ctx.metadata, timeout=ctx.options.call_timeout_s)
    major = info.protocol_version.split(".")[0]
    if major != "1":
        raise RuleFailed(f"protocol_version is {info.protocol_version!r}; a worldloom.render.v1 server states major version 1 (e.g. '1.0.0')")
    if not info.backend:
        raise RuleFailed("backend is empty; state it, e.g. 'procedural' or 'unreal'")
    unknown = [name for name in info.passes if name not in KNOWN_PASSES]
    if not info.passes or unknown:
        raise RuleFailed(f"passes {list(info.passes)} must be a non-empty subset of {sorted(KNOWN_PASSES)}")
    if not 0 < info.max_chunk_bytes <= MAX_CHUNK_LIMIT:
        raise RuleFailed(f"max_chunk_bytes is {info.max_chunk_bytes}; it must be in 1..{MAX_CHUNK_LIMIT} (1 MiB)")
    if info.heartbeat_interval_ms <= 0:
        raise RuleFailed("heartbeat_interval_ms is 0; state how often heartbeats come so clients can set an idle timeout")
    if not info.server_id:
        raise RuleFailed("server_id is empty; a random id per process lets clients notice a restart")
    ctx.info = info
    return (f"{info.backend} ({info.engine_version}), protocol {info.protocol_version}, passes {','.join(info.passes)}, "
            f"capabilities {','.join(info.capabilities) or '-'}, chunks <= {info.max_chunk_bytes} B")


def health(ctx: CheckContext) -> str:
    stub = health_pb2_grpc.HealthStub(ctx.channel)
    states = {}
    for service in ("", SERVICE_NAME):
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=ctx.options.call_timeout_s)
        except grpc.RpcError as error:
            raise RuleFailed(f"grpc.health.v1 Check(service={service!r}) failed with {error.code().name}; register the standard health service") from None
        states[service or "<server>"] = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    bad = {name: state for name, state in states.items() if state != "SERVING"}
    if bad:
        raise RuleFailed(f"health is {bad}; a ready server answers SERVING for '' and {SERVICE_NAME}")
    return "SERVING for the server and " + SERVICE_NAME


def reflection(ctx: CheckContext) -> str:
    stub = reflection_pb2_grpc.ServerReflectionStub(ctx.channel)
    try:
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=ctx.options.call_timeout_s)
        services = [service.name for response in responses for service in response.list_services_response.service]
    except grpc.RpcError as error:
        raise RuleFailed(f"server reflection failed with {error.code().name}; enable grpc reflection so stock tools can list the service") from None
    if SERVICE_NAME not in services:
        raise RuleFailed(f"reflection lists {services}, not {SERVICE_NAME}")
    return f"lists {len(services)} services including {SERVICE_NAME}"


def invalid_manifest(ctx: CheckContext) -> str:
    ctx.require("server_info")
    messages = []
    for what, kwargs, must_mention in (
        ("a YAML syntax error", {"manifest_yaml": BROKEN_YAML}, None),
        ("output.frames: -3", {"manifest_yaml": BAD_FIELD_MANIFEST}, "frames"),
        ("a resolved clip of the wrong schema", {"resolved_clip_json": json.dumps({"schema": "nope/0"})}, "schema"),
    ):
        details = _expect_code(ctx, lambda kwargs=kwargs: ctx.open_session(dry_run=True, **kwargs), grpc.StatusCode.INVALID_ARGUMENT,
                               f"OpenSession(dry_run) with {what}")
        if not details.strip() or "\n" in details.strip() or "Traceback" in details:
            raise RuleFailed(f"OpenSession with {what}: the error must be one clear line, got {details!r}")
        if must_mention and must_mention not in details:
            raise RuleFailed(f"OpenSession with {what}: the message {details!r} does not name the field {must_mention!r}")
        messages.append(details)
    return f"INVALID_ARGUMENT with one-line messages, e.g. {messages[1][:100]!r}"


# ------------------------------------------------------------------------------ sessions


def _check_resolution(ctx: CheckContext, response: pb.OpenSessionResponse, what: str) -> dict:
    """The response describes the clip it returns (hash validity is the `resolved_hash` rule)."""
    try:
        clip = json.loads(response.resolved_clip_json)
    except json.JSONDecodeError as error:
        raise RuleFailed(f"{what}: resolved_clip_json is not JSON ({error.msg})") from None
    try:
        typed = ResolvedClip.parse(clip, source=f"{what}: resolved_clip_json")
    except UserError as error:
        raise RuleFailed(error.one_line()) from None
    output = typed.output
    for field_name, value, clip_value in (("frame_count", response.frame_count, output.frames), ("width", response.width, output.width),
                                          ("height", response.height, output.height)):
        if clip_value != value:
            raise RuleFailed(f"{what}: {field_name} is {value} but the resolved clip says {clip_value}")
    if abs(response.fps - output.fps) > 1e-9:
        raise RuleFailed(f"{what}: fps is {response.fps:g} but the resolved clip says {output.fps:g}")
    if tuple(response.passes) != typed.passes:
        raise RuleFailed(f"{what}: passes {list(response.passes)} differ from the resolved clip's {list(typed.passes)}")
    ctx.resolved = typed
    return clip


def dry_run(ctx: CheckContext) -> str:
    ctx.require("server_info")
    response = ctx.open_session(dry_run=True)
    if response.session_id:
        raise RuleFailed(f"a dry run returned session_id {response.session_id!r}; dry runs validate and resolve only")
    _check_resolution(ctx, response, "dry run")
    try:
        real = ctx.open_session()
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise RuleFailed("after a dry run the server refused a real session (RESOURCE_EXHAUSTED): the dry run kept a session") from None
        raise
    ctx.close_session(real.session_id)
    if real.resolved_clip_json != response.resolved_clip_json:
        raise RuleFailed("the same manifest resolved differently in a dry run and a real OpenSession")
    return f"no session kept; same resolution as a real open ({response.frame_count} frames)"


def session_open(ctx: CheckContext) -> str:
    ctx.require("server_info")
    response = ctx.open_session()
    if not response.session_id:
        raise RuleFailed("OpenSession returned an empty session_id")
    ctx.session = response
    ctx.clip = _check_resolution(ctx, response, "OpenSession")
    return f"session {response.session_id[:8]}…, {response.frame_count} frames {response.width}x{response.height} @ {response.fps:g} fps"


def resolved_hash(ctx: CheckContext) -> str:
    ctx.require("session_open")
    response, clip = ctx.session, ctx.clip
    expected = canonical_sha256(clip)
    if response.resolved_sha256 != expected:
        raise RuleFailed(f"resolved_sha256 {response.resolved_sha256[:16]}… is not the sha256 of the canonical resolved clip "
                         f"({expected[:16]}…): hash json.dumps(clip minus 'sha256', sort_keys=True, separators=(',', ':'))")
    if clip.get("sha256") not in (None, "", expected):
        raise RuleFailed(f"the clip's own sha256 field {clip['sha256'][:16]}… differs from its content hash {expected[:16]}…")
    # The resolved clip sent back must reproduce itself (it is what generate stores beside the data).
    again = ctx.open_session(dry_run=True, resolved_clip_json=response.resolved_clip_json)
    if again.resolved_sha256 != expected:
        raise RuleFailed(f"re-opening the returned resolved clip gave hash {again.resolved_sha256[:12]}…, not {expected[:12]}…")
    return f"resolved_sha256 {expected[:12]}… is the canonical hash and survives a round trip"


def resolution_matches_client(ctx: CheckContext) -> str:
    ctx.require("session_open")
    try:
        from contract import manifest as manifests

        loaded = manifests.load_manifest(ctx.options.manifest_yaml, source_name="<check manifest>")
        scene = ctx.options.scene or loaded.scenes[0].name
        local = manifests.resolve_clip(loaded, scene, ctx.options.clip_index)
    except ImportError:
        raise RuleSkipped("this client has no manifest resolver (contract.manifest) to compare with") from None
    local_hash, server_hash = canonical_sha256(local), canonical_sha256(ctx.clip)
    if local_hash != server_hash:
        differing = sorted(key for key in set(local) | set(ctx.clip) if key != "sha256" and local.get(key) != ctx.clip.get(key))
        raise RuleFailed(f"the server resolved the manifest to {server_hash[:12]}…, this client to {local_hash[:12]}… "
                         f"(differing fields: {', '.join(differing) or '-'}); server and client run different worldloom resolvers")
    return f"server and client both resolve to {local_hash[:12]}…"


def second_session_rejected(ctx: CheckContext) -> str:
    ctx.require("session_open")
    details = None
    try:
        other = ctx.open_session()
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise RuleFailed(f"a second OpenSession got {error.code().name} ({error.details()}); expected RESOURCE_EXHAUSTED") from None
        details = error.details()
    else:
        # Leave the server as the next rules expect it: one open session of ours. (A server that
        # let the second client in may have dropped the first session.)
        for session_id in (other.session_id, ctx.session.session_id):
            try:
                ctx.close_session(session_id)
            except grpc.RpcError:
                pass
        try:
            ctx.session = ctx.open_session()
        except grpc.RpcError:
            pass
        raise RuleFailed("a second OpenSession was accepted while a session was open; one session at a time: answer RESOURCE_EXHAUSTED")
    return f"RESOURCE_EXHAUSTED ({details})"


# ------------------------------------------------------------------------------ frames


def frame_sequence(ctx: CheckContext) -> str:
    ctx.require("session_open")
    started = time.monotonic()
    ctx.full = stream = _render(ctx)
    seconds = time.monotonic() - started
    frames = ctx.session.frame_count
    passes = list(ctx.session.passes)
    expected = [(index, name) for index in range(frames) for name in passes]
    got = [(frame.index, frame.pass_name) for frame in stream.frames]
    if got != expected:
        raise RuleFailed(f"expected one header per frame and pass in order {expected[:4]}… ({len(expected)}), got {got[:4]}… ({len(got)})")
    return f"{frames} frames x {len(passes)} passes in {seconds:.2f} s"


def chunk_sizes(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    stream: ReceivedStream = ctx.full
    if stream.problems:
        raise RuleFailed(stream.problems[0])
    limit = ctx.info.max_chunk_bytes
    largest = 0
    for frame in stream.frames:
        header, where = frame.header, f"frame {frame.index} pass {frame.pass_name}"
        if frame.problems:
            raise RuleFailed(f"{where}: {frame.problems[0]}")
        if frame.chunk_sizes and max(frame.chunk_sizes) > limit:
            raise RuleFailed(f"{where}: a chunk of {max(frame.chunk_sizes)} bytes exceeds max_chunk_bytes {limit}")
        if any(size == 0 for size in frame.chunk_sizes):
            raise RuleFailed(f"{where}: empty chunk")
        dtype, channels = KNOWN_PASSES[frame.pass_name]
        if header.dtype != dtype or header.channels != channels or header.encoding != "raw":
            raise RuleFailed(f"{where}: header says {header.dtype} x{header.channels} {header.encoding!r}; "
                             f"the protocol sends {frame.pass_name} as raw {dtype} x{channels}")
        if (header.width, header.height) != (ctx.session.width, ctx.session.height):
            raise RuleFailed(f"{where}: {header.width}x{header.height}, the session is {ctx.session.width}x{ctx.session.height}")
        size = header.width * header.height * channels * np.dtype(dtype).itemsize
        if header.byte_size != size or len(frame.payload) != size:
            raise RuleFailed(f"{where}: byte_size {header.byte_size}, received {len(frame.payload)} bytes, "
                             f"expected {size} for {header.width}x{header.height}x{channels} {dtype}")
        largest = max([largest, *frame.chunk_sizes])
    return f"{len(stream.frames)} payloads, contiguous chunks, largest {largest} B <= {limit} B"


def frame_sha256(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    for frame in ctx.full.frames:
        actual = frame.payload_sha256()
        if frame.header.sha256 != actual:
            raise RuleFailed(f"frame {frame.index} pass {frame.pass_name}: header sha256 {frame.header.sha256[:16]}… "
                             f"but the chunks hash to {actual[:16]}…")
        if frame.pass_name == "depth":
            depth = np.frombuffer(bytes(frame.payload), dtype="<f4")
            if not np.all(np.isfinite(depth)) or depth.min() < 0:
                raise RuleFailed(f"frame {frame.index} depth has inf/nan or negative values; the sky gets the far plane")
    return f"{len(ctx.full.frames)} payloads match their sha256; depth finite"


def heartbeats(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    beats = ctx.full.heartbeats
    if not beats:
        raise RuleFailed("no Heartbeat in a whole Render call; send them at least every heartbeat_interval_ms")
    if any(beat.frames_total != ctx.session.frame_count for beat in beats):
        raise RuleFailed(f"heartbeat frames_total {[b.frames_total for b in beats][:5]} != frames requested {ctx.session.frame_count}")
    return f"{len(beats)} heartbeats"


def _header_pose(frame) -> np.ndarray:
    values = list(frame.header.camera_to_world)
    if len(values) != 16:
        raise RuleFailed(f"frame {frame.index} pass {frame.pass_name}: camera_to_world has {len(values)} values, not 16")
    return np.asarray(values, dtype=np.float64).reshape(4, 4)


def camera_state(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    clip = ctx.resolved
    assert clip is not None  # set by session_open
    poses = clip.poses
    rollout = poses is not None and clip.camera.pose_source == "rollout"
    actions = clip.actions
    lens = clip.camera.intrinsics
    k = {"fx": lens.fx, "fy": lens.fy, "cx": lens.cx, "cy": lens.cy}
    per_frame: dict[int, np.ndarray] = {}
    for frame in ctx.full.frames:
        where = f"frame {frame.index} pass {frame.pass_name}"
        pose = _header_pose(frame)
        rotation = pose[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or not np.allclose(pose[3], [0, 0, 0, 1]):
            raise RuleFailed(f"{where}: camera_to_world is not a rigid transform")
        if frame.index in per_frame and not np.array_equal(per_frame[frame.index], pose):
            raise RuleFailed(f"{where}: a different camera_to_world than the other passes of the same frame")
        per_frame[frame.index] = pose
        if rollout and poses is not None:
            expected = poses[frame.index]
            if (np.abs(pose[:3, 3] - expected[:3, 3]).max() > POSE_ATOL_M
                    or np.abs(rotation - expected[:3, :3]).max() > ROTATION_ATOL):
                hint = ""
                for other in (frame.index - 1, frame.index + 1):
                    if 0 <= other < len(poses) and np.allclose(pose, poses[other], atol=POSE_ATOL_M):
                        hint = f" (it is the pose of frame {other}: pose from another tick)"
                raise RuleFailed(f"{where}: camera_to_world differs from the clip's pose rollout for frame {frame.index}{hint}; "
                                 "read the camera state in the same tick as the pixels")
        intr = frame.header.intrinsics
        for name in ("fx", "fy", "cx", "cy"):
            if name in k and abs(getattr(intr, name) - float(k[name])) > max(1e-3, 1e-4 * abs(float(k[name]))):
                raise RuleFailed(f"{where}: intrinsics {name} {getattr(intr, name):g}, the clip says {float(k[name]):g}")
        if len(actions) >= ctx.session.frame_count:
            action = np.asarray(frame.header.action, dtype=np.float32)
            if action.shape != actions[frame.index].shape or not np.allclose(action, actions[frame.index], atol=1e-6):
                raise RuleFailed(f"{where}: action {action.tolist()} is not the clip's action for frame {frame.index}")
    detail = "equals the pose rollout" if rollout else "rigid (no rollout poses to compare: physics-driven rig)"
    return f"camera_to_world {detail}; intrinsics and action match for every frame"


def sim_time(ctx: CheckContext) -> str:
    """Fixed step: frame i is simulated at origin + i * step, the same in every call.

    render.proto says "seconds since the first rendered frame", i.e. origin 0 (SIM_TIME_ORIGINS).
    """
    ctx.require("frame_sequence")
    assert ctx.resolved is not None  # set by session_open
    step = ctx.resolved.simulation.step_s
    first = ctx.full.frames[0]
    origin = first.header.sim_time - first.index * step
    if not any(abs(origin - allowed * step) <= 1e-6 for allowed in SIM_TIME_ORIGINS):
        raise RuleFailed(f"frame 0 has sim_time {origin:.6f}; expected 0 (seconds since the first rendered frame)")
    for frame in ctx.full.frames:
        expected = origin + frame.index * step
        if abs(frame.header.sim_time - expected) > 1e-6:
            raise RuleFailed(f"frame {frame.index} pass {frame.pass_name}: sim_time {frame.header.sim_time:.6f}, expected "
                             f"{expected:.6f} (one fixed step of {step:g} s per frame)")
    return f"one fixed step of {step:g} s per frame, frame 0 at {origin:g} s"


def determinism(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    if "deterministic" not in ctx.info.capabilities:
        raise RuleSkipped("the server does not advertise 'deterministic' (GPU renderers need not be bit-exact)")
    again = _render(ctx).by_key()
    for key, frame in ctx.full.by_key().items():
        other = again.get(key)
        if other is None or bytes(other.payload) != bytes(frame.payload):
            raise RuleFailed(f"frame {key[0]} pass {key[1]} differs between two renders of the same session; "
                             "drop 'deterministic' from capabilities or make rendering bit-exact")
    return f"two renders byte-identical ({len(again)} payloads)"


def resume(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    frames = ctx.session.frame_count
    if frames < 2:
        raise RuleSkipped("the probe clip has fewer than 2 frames")
    start = frames // 2
    tail = _render(ctx, start=start)
    indices = tail.indices()
    if indices != list(range(start, frames)):
        raise RuleFailed(f"Render(start_frame={start}) returned frames {indices}, expected {list(range(start, frames))}: "
                         "resume must start at start_frame")
    full = ctx.full.by_key()
    deterministic = "deterministic" in ctx.info.capabilities
    for frame in tail.frames:
        reference = full[(frame.index, frame.pass_name)]
        if not np.allclose(_header_pose(frame), _header_pose(reference), atol=1e-6):
            raise RuleFailed(f"resumed frame {frame.index}: camera_to_world differs from the full render's frame {frame.index}")
        if abs(frame.header.sim_time - reference.header.sim_time) > 1e-9:
            raise RuleFailed(f"resumed frame {frame.index}: sim_time {frame.header.sim_time:g}, the full render said "
                             f"{reference.header.sim_time:g}; sim_time must not depend on start_frame")
        if deterministic and frame.header.sha256 != reference.header.sha256:
            raise RuleFailed(f"resumed frame {frame.index} pass {frame.pass_name}: pixels differ from the full render's "
                             "(output for frame i must not depend on start_frame)")
    one = _render(ctx, start=start, end=start + 1).indices()
    if one != [start]:
        raise RuleFailed(f"Render(start_frame={start}, end_frame={start + 1}) returned frames {one}, expected [{start}]")
    return f"frames {start}..{frames - 1} equal the full render's{' bytes' if deterministic else ' camera state'}; end_frame honoured"


# ------------------------------------------------------------------------------ lifecycle


def _retry_busy(action, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise RuleFailed(f"{what}: {error.code().name} ({error.details()})") from None
            time.sleep(0.2)


def cancellation(ctx: CheckContext) -> str:
    ctx.require("frame_sequence")
    request = pb.RenderRequest(session_id=ctx.session.session_id)
    open_and_cancel(ctx.stub, request, metadata=ctx.metadata, timeout_s=ctx.options.render_timeout_s)
    started = time.monotonic()
    again = _retry_busy(lambda: _render(ctx, start=0, end=1), HANDOVER_S, "Render after a cancelled Render")
    if again.indices() != [0]:
        raise RuleFailed(f"Render after a cancelled Render returned frames {again.indices()}, expected [0]")
    ctx.close_session(ctx.session.session_id)
    ctx.session = None
    fresh = _retry_busy(lambda: ctx.open_session(), HANDOVER_S, "OpenSession after cancelling a stream and closing")
    ctx.close_session(fresh.session_id)
    return f"after a cancelled stream the session rendered again and a new session opened ({time.monotonic() - started:.2f} s)"


def unknown_session(ctx: CheckContext) -> str:
    ctx.require("server_info")
    ghost = "conformance-no-such-session"
    _expect_code(ctx, lambda: ctx.close_session(ghost), grpc.StatusCode.NOT_FOUND, "CloseSession of an unknown session")
    _expect_code(
        ctx,
        lambda: read_render(ctx.stub, pb.RenderRequest(session_id=ghost), metadata=ctx.metadata, timeout_s=ctx.options.call_timeout_s),
        grpc.StatusCode.NOT_FOUND,
        "Render of an unknown session",
    )
    return "CloseSession and Render of an unknown session answer NOT_FOUND"


RULES: list[tuple[str, Rule]] = [
    ("server_info", server_info),
    ("health", health),
    ("reflection", reflection),
    ("invalid_manifest", invalid_manifest),
    ("dry_run", dry_run),
    ("session_open", session_open),
    ("resolved_hash", resolved_hash),
    ("resolution_matches_client", resolution_matches_client),
    ("second_session_rejected", second_session_rejected),
    ("frame_sequence", frame_sequence),
    ("chunk_sizes", chunk_sizes),
    ("frame_sha256", frame_sha256),
    ("heartbeats", heartbeats),
    ("camera_state", camera_state),
    ("sim_time", sim_time),
    ("determinism", determinism),
    ("resume", resume),
    ("cancellation", cancellation),
    ("unknown_session", unknown_session),
]

RULE_NAMES = [name for name, _ in RULES]
