"""Pixels out of Unreal render targets in one call per pass: export to a file, decode with numpy.

Why not `RenderingLibrary.read_render_target(_raw)`: Epic documents both as "Incredibly
inefficient and slow" (UKismetRenderingLibrary::ReadRenderTargetRaw, API reference 5.0-5.5),
and in Python they return one `Color`/`LinearColor` struct per pixel; building and converting
921,600 structs per 720p frame costs about half a second in Python alone
(docs/bench/unreal.md). `read_render_target_raw` also reads only B8G8R8A8 and FloatRGBA
targets (ReadRenderTargetHelper in KismetRenderingLibrary.cpp): an R32F target returns None.

What the bridge does instead, one path per pass:

| pass  | render target  | capture source     | export (`RenderingLibrary.export_render_target`) | decoded by |
| ----- | -------------- | ------------------ | ------------------------------------------------ | ---------- |
| rgb   | `RTF_RGBA8`    | SCS_FINAL_COLOR_LDR| PNG (8-bit BGRA written as RGBA)                 | PIL        |
| depth | `RTF_RGBA16F`  | SCS_SCENE_DEPTH    | EXR, half floats, ZIP (depth in cm in R)         | `read_exr` |

Source for the format choice: UKismetRenderingLibrary::ExportRenderTarget writes EXR for an
`RTF_RGBA16f` target (HDR only if the file name ends in .hdr) and PNG otherwise;
FImageUtils::ExportRenderTarget2DAsEXR accepts PF_B8G8R8A8 and PF_FloatRGBA only; the EXR comes
from FExrImageWrapper::CompressRaw with ZIP compression (NO_COMPRESSION when asked for
uncompressed). Both read the target back with a GPU flush, so an export costs one GPU round
trip plus encoding; that is the price of a pass, paid once per frame.

`read_exr` is a small reader for what that writer produces: single-part scanline images with
HALF/FLOAT/UINT channels, NO, ZIPS or ZIP compression. Anything else is refused with a message,
never guessed. It is checked against files written by the OpenEXR library in
tests/test_unreal_readback.py.

Depth precision (RTF_RGBA16F): half floats carry 11 significant bits, so the spacing between
representable depths is 2^(floor(log2(d)) - 10) cm: 0.5 cm at 5-10 m, 4 cm at 41-82 m, 32 cm at
328-655 m. The largest finite value is 65,504 cm (655.04 m); anything farther (and the sky)
comes back as 65,504 or inf and is reported as `camera.far_m`.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_exr", "read_png_rgb", "depth_m_from_half_cm", "HALF_MAX_CM", "half_spacing_cm", "ExrError"]

HALF_MAX_CM = 65504.0  # largest finite IEEE half: the depth ceiling of an RTF_RGBA16F target
CM_PER_M = 100.0
_MAGIC = 20000630  # 0x762f3101, little-endian int32 at offset 0
_PIXEL_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_LINES_PER_BLOCK = {0: 1, 2: 1, 3: 16}  # NO_COMPRESSION, ZIPS, ZIP
_COMPRESSION_NAMES = {0: "none", 1: "RLE", 2: "ZIPS", 3: "ZIP", 4: "PIZ", 5: "PXR24", 6: "B44", 7: "B44A", 8: "DWAA", 9: "DWAB"}
_MAX_PIXELS = 16384 * 16384  # a bound on memory for a corrupt header


class ExrError(ValueError):
    """The file is not an EXR this reader handles (names what it found)."""


def half_spacing_cm(depth_cm: float) -> float:
    """Distance between neighbouring half floats at `depth_cm` (the depth pass's resolution there)."""
    if depth_cm <= 0:
        return float(np.finfo(np.float16).smallest_subnormal)
    return float(2.0 ** (np.floor(np.log2(depth_cm)) - 10))


def _read_cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("latin-1"), end + 1


def _parse_header(data: bytes) -> tuple[dict, int]:
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _MAGIC:
        raise ExrError("not an OpenEXR file (bad magic number)")
    version = struct.unpack_from("<i", data, 4)[0]
    if version & 0x1A00:  # tiled (0x200), deep (0x800), multi-part (0x1000)
        raise ExrError(f"EXR flags {version:#x}: only single-part scanline images are read")
    pos, attributes = 8, {}
    while True:
        name, pos = _read_cstring(data, pos)
        if not name:
            return attributes, pos
        kind, pos = _read_cstring(data, pos)
        (size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        attributes[name] = (kind, data[pos:pos + size])
        pos += size


def _channels(value: bytes) -> list[tuple[str, np.dtype]]:
    channels, pos = [], 0
    while value[pos:pos + 1] not in (b"\0", b""):
        name, pos = _read_cstring(value, pos)
        pixel_type, _linear, x_sampling, y_sampling = struct.unpack_from("<iB3xii", value, pos)
        pos += 16
        if pixel_type not in _PIXEL_DTYPES or (x_sampling, y_sampling) != (1, 1):
            raise ExrError(f"channel {name!r}: pixel type {pixel_type} with sampling {x_sampling}x{y_sampling} is not read")
        channels.append((name, _PIXEL_DTYPES[pixel_type]))
    return channels


def _unzip_block(packed: bytes, expected: int) -> bytes:
    """EXR ZIP/ZIPS: zlib, then undo the byte predictor and the even/odd interleave."""
    if len(packed) == expected:  # the writer stores a block raw when compression does not help
        return packed
    raw = np.frombuffer(zlib.decompress(packed, bufsize=expected), dtype=np.uint8)
    if raw.size != expected:
        raise ExrError(f"a ZIP block inflated to {raw.size} bytes, expected {expected}")
    # t[0] = d[0]; t[i] = t[i-1] + d[i] - 128 (mod 256): a running sum in uint8, which wraps mod 256.
    deltas = raw.copy()
    deltas[1:] -= np.uint8(128)
    predicted = np.cumsum(deltas, dtype=np.uint8)
    out = np.empty(expected, dtype=np.uint8)
    half = (expected + 1) // 2
    out[0::2] = predicted[:half]
    out[1::2] = predicted[half:]
    return out.tobytes()


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    """Channels of a scanline EXR as (H, W) arrays (float16/float32/uint32), keyed by name."""
    data = Path(path).read_bytes()
    try:
        return _decode_exr(data)
    except ExrError:
        raise
    except (struct.error, IndexError, zlib.error, ValueError) as error:  # truncated or corrupt: say so, never crash oddly
        raise ExrError(f"{Path(path).name} is truncated or corrupt ({error})") from error


def _decode_exr(data: bytes) -> dict[str, np.ndarray]:
    attributes, pos = _parse_header(data)
    for required in ("channels", "compression", "dataWindow"):
        if required not in attributes:
            raise ExrError(f"EXR header has no {required!r} attribute")
    channels = _channels(attributes["channels"][1])
    compression = attributes["compression"][1][0]
    if compression not in _LINES_PER_BLOCK:
        raise ExrError(f"EXR compression {_COMPRESSION_NAMES.get(compression, compression)} is not read "
                       "(Unreal's exporter writes ZIP or none)")
    x_min, y_min, x_max, y_max = struct.unpack("<4i", attributes["dataWindow"][1])
    width, height = x_max - x_min + 1, y_max - y_min + 1
    if width <= 0 or height <= 0 or width * height > _MAX_PIXELS:
        raise ExrError(f"EXR data window {width}x{height} is empty or too large")
    lines = _LINES_PER_BLOCK[compression]
    blocks = -(-height // lines)
    offsets = struct.unpack_from(f"<{blocks}Q", data, pos)
    # One scan line is every channel's row in header order: read a block as records of that layout.
    line_dtype = np.dtype([(name, dtype, (width,)) for name, dtype in channels])
    planes = {name: np.empty((height, width), dtype=dtype) for name, dtype in channels}
    for offset in offsets:
        y, size = struct.unpack_from("<ii", data, offset)
        row = y - y_min
        count = min(lines, height - row)
        if row < 0 or count <= 0:
            raise ExrError(f"EXR block at line {y} is outside the data window")
        expected = count * line_dtype.itemsize
        block = data[offset + 8:offset + 8 + size]
        block = block if compression == 0 else _unzip_block(block, expected)
        if len(block) != expected:
            raise ExrError(f"EXR block at line {y} holds {len(block)} bytes, expected {expected}")
        records = np.frombuffer(block, dtype=line_dtype, count=count)
        for name, _ in channels:
            planes[name][row:row + count] = records[name]
    return planes


def read_png_rgb(path: str | Path, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 from the exported PNG of an RTF_RGBA8 target (alpha dropped, not applied)."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if rgb.shape != (height, width, 3):
        raise RuntimeError(f"exported {Path(path).name} is {rgb.shape[1]}x{rgb.shape[0]}, not {width}x{height}")
    return rgb


def depth_m_from_half_cm(depth_cm: np.ndarray, far_m: float) -> np.ndarray:
    """SCS_SCENE_DEPTH (planar z, cm, half floats) -> float32 metres; sky, ceiling and beyond -> far_m."""
    depth = np.asarray(depth_cm, dtype=np.float64)
    beyond = ~np.isfinite(depth) | (depth >= HALF_MAX_CM)
    metres = np.where(beyond, far_m, depth / CM_PER_M)
    return np.minimum(metres, far_m).astype(np.float32)
