"""Read one Render stream as it arrives on the wire, without the client's repairs.

The conformance suite must see what the server actually sends (chunk sizes, ordering, hashes),
so it does not use `RenderClient` (which reassembles, retries and resumes).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb


@dataclass
class ReceivedFrame:
    """One (frame, pass) as received: its header, the concatenated chunks and framing problems."""

    header: pb.FrameHeader
    payload: bytearray = field(default_factory=bytearray)
    chunk_sizes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def index(self) -> int:
        return int(self.header.frame_index)

    @property
    def pass_name(self) -> str:
        return getattr(self.header, "pass")

    def payload_sha256(self) -> str:
        return hashlib.sha256(bytes(self.payload)).hexdigest()


@dataclass
class ReceivedStream:
    frames: list[ReceivedFrame] = field(default_factory=list)
    heartbeats: list[pb.Heartbeat] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # chunks outside any header

    def by_key(self) -> dict[tuple[int, str], ReceivedFrame]:
        return {(frame.index, frame.pass_name): frame for frame in self.frames}

    def indices(self) -> list[int]:
        seen: list[int] = []
        for frame in self.frames:
            if not seen or seen[-1] != frame.index:
                seen.append(frame.index)
        return seen


def read_render(stub, request: pb.RenderRequest, *, metadata, timeout_s: float) -> ReceivedStream:
    """Consume a whole Render call; raises grpc.RpcError on a failed call."""
    received = ReceivedStream()
    current: ReceivedFrame | None = None
    for event in stub.Render(request, metadata=metadata, timeout=timeout_s):
        kind = event.WhichOneof("event")
        if kind == "header":
            current = ReceivedFrame(header=event.header)
            received.frames.append(current)
        elif kind == "chunk":
            chunk = event.chunk
            if current is None:
                received.problems.append(f"chunk of frame {chunk.frame_index} arrived before any FrameHeader")
                continue
            if chunk.frame_index != current.index or getattr(chunk, "pass") != current.pass_name:
                current.problems.append(
                    f"chunk labelled frame {chunk.frame_index}/{getattr(chunk, 'pass')} inside frame {current.index}/{current.pass_name}"
                )
            if chunk.offset != len(current.payload):
                current.problems.append(f"chunk offset {chunk.offset} but {len(current.payload)} bytes received so far")
            current.payload.extend(chunk.data)
            current.chunk_sizes.append(len(chunk.data))
        elif kind == "heartbeat":
            received.heartbeats.append(event.heartbeat)
    return received


def open_and_cancel(stub, request: pb.RenderRequest, *, metadata, timeout_s: float) -> int:
    """Start a Render call, read until the first chunk, then cancel it; returns events read."""
    call = stub.Render(request, metadata=metadata, timeout=timeout_s)
    events = 0
    try:
        for event in call:
            events += 1
            if event.WhichOneof("event") == "chunk":
                break
    finally:
        call.cancel()
    return events
