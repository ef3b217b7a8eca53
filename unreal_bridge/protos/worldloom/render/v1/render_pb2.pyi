from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("protocol_version", "backend", "engine_version", "passes", "capabilities", "max_chunk_bytes", "heartbeat_interval_ms", "server_id")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PASSES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    backend: str
    engine_version: str
    passes: _containers.RepeatedScalarFieldContainer[str]
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    max_chunk_bytes: int
    heartbeat_interval_ms: int
    server_id: str
    def __init__(self, protocol_version: _Optional[str] = ..., backend: _Optional[str] = ..., engine_version: _Optional[str] = ..., passes: _Optional[_Iterable[str]] = ..., capabilities: _Optional[_Iterable[str]] = ..., max_chunk_bytes: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ..., server_id: _Optional[str] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("manifest_yaml", "resolved_clip_json", "scene", "clip_index", "dry_run", "auth_token")
    MANIFEST_YAML_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CLIP_JSON_FIELD_NUMBER: _ClassVar[int]
    SCENE_FIELD_NUMBER: _ClassVar[int]
    CLIP_INDEX_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    manifest_yaml: str
    resolved_clip_json: str
    scene: str
    clip_index: int
    dry_run: bool
    auth_token: str
    def __init__(self, manifest_yaml: _Optional[str] = ..., resolved_clip_json: _Optional[str] = ..., scene: _Optional[str] = ..., clip_index: _Optional[int] = ..., dry_run: _Optional[bool] = ..., auth_token: _Optional[str] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "resolved_clip_json", "resolved_sha256", "frame_count", "width", "height", "fps", "passes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CLIP_JSON_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_SHA256_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    PASSES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    resolved_clip_json: str
    resolved_sha256: str
    frame_count: int
    width: int
    height: int
    fps: float
    passes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., resolved_clip_json: _Optional[str] = ..., resolved_sha256: _Optional[str] = ..., frame_count: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., passes: _Optional[_Iterable[str]] = ...) -> None: ...

class RenderRequest(_message.Message):
    __slots__ = ("session_id", "start_frame", "end_frame", "passes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    PASSES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    start_frame: int
    end_frame: int
    passes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ..., passes: _Optional[_Iterable[str]] = ...) -> None: ...

class Intrinsics(_message.Message):
    __slots__ = ("fx", "fy", "cx", "cy", "width", "height")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class FrameHeader(_message.Message):
    __slots__ = ("frame_index", "sim_time", "width", "height", "channels", "dtype", "encoding", "byte_size", "sha256", "intrinsics", "camera_to_world", "action", "depth_kind")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    SIM_TIME_FIELD_NUMBER: _ClassVar[int]
    PASS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    CAMERA_TO_WORLD_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DEPTH_KIND_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    sim_time: float
    width: int
    height: int
    channels: int
    dtype: str
    encoding: str
    byte_size: int
    sha256: str
    intrinsics: Intrinsics
    camera_to_world: _containers.RepeatedScalarFieldContainer[float]
    action: _containers.RepeatedScalarFieldContainer[float]
    depth_kind: str
    def __init__(self, frame_index: _Optional[int] = ..., sim_time: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., dtype: _Optional[str] = ..., encoding: _Optional[str] = ..., byte_size: _Optional[int] = ..., sha256: _Optional[str] = ..., intrinsics: _Optional[_Union[Intrinsics, _Mapping]] = ..., camera_to_world: _Optional[_Iterable[float]] = ..., action: _Optional[_Iterable[float]] = ..., depth_kind: _Optional[str] = ..., **kwargs) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("frame_index", "offset", "data")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    PASS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    offset: int
    data: bytes
    def __init__(self, frame_index: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., **kwargs) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("frames_done", "frames_total", "server_time", "message")
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    frames_done: int
    frames_total: int
    server_time: float
    message: str
    def __init__(self, frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ..., server_time: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class RenderEvent(_message.Message):
    __slots__ = ("header", "chunk", "heartbeat")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    header: FrameHeader
    chunk: Chunk
    heartbeat: Heartbeat
    def __init__(self, header: _Optional[_Union[FrameHeader, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
