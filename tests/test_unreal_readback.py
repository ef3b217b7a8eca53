"""The read-back path's decoders: the EXR reader against the OpenEXR library, depth in metres through half floats."""
from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from unreal_bridge.unreal.readback import (
    HALF_MAX_CM,
    ExrError,
    depth_m_from_half_cm,
    half_spacing_cm,
    read_exr,
    read_png_rgb,
)


def _write(path, channels, compression=OpenEXR.ZIP_COMPRESSION):
    # A copy: OpenEXR.File wraps the arrays of the dict it is given in Channel objects.
    OpenEXR.File({"compression": compression, "type": OpenEXR.scanlineimage}, dict(channels)).write(str(path))


@pytest.mark.parametrize("compression", [OpenEXR.ZIP_COMPRESSION, OpenEXR.ZIPS_COMPRESSION, OpenEXR.NO_COMPRESSION],
                         ids=["zip", "zips", "none"])
@pytest.mark.parametrize("height, width", [(24, 32), (37, 19), (1, 5)])
def test_read_exr_matches_the_reference_library(tmp_path, compression, height, width):
    rng = np.random.default_rng(height * width)
    with np.errstate(over="ignore"):
        red = (rng.random((height, width)) * 70000).astype(np.float16)  # includes +inf beyond 65504
    channels = {"R": red, "G": rng.random((height, width)).astype(np.float32),
                "B": np.zeros((height, width), np.float16), "A": np.ones((height, width), np.float16)}
    _write(tmp_path / "x.exr", channels, compression)
    planes = read_exr(tmp_path / "x.exr")
    assert set(planes) == set(channels)
    for name, values in channels.items():
        assert planes[name].dtype == values.dtype
        assert np.array_equal(planes[name].view(np.uint8), values.view(np.uint8)), name  # bit-exact, inf included


def test_read_exr_refuses_what_it_does_not_read(tmp_path):
    half = np.ones((8, 8), np.float16)
    _write(tmp_path / "piz.exr", {"R": half}, OpenEXR.PIZ_COMPRESSION)
    with pytest.raises(ExrError, match="PIZ"):
        read_exr(tmp_path / "piz.exr")
    good = tmp_path / "good.exr"
    _write(good, {"R": half})
    (tmp_path / "cut.exr").write_bytes(good.read_bytes()[:-20])
    with pytest.raises(ExrError, match="truncated or corrupt"):
        read_exr(tmp_path / "cut.exr")
    (tmp_path / "empty.exr").write_bytes(b"")  # what ExportRenderTarget leaves when encoding fails
    with pytest.raises(ExrError, match="not an OpenEXR file"):
        read_exr(tmp_path / "empty.exr")


def test_depth_round_trips_in_metres_through_half_floats_within_their_precision():
    """The depth pass: metres -> cm (SCS_SCENE_DEPTH) -> half float (RTF_RGBA16F) -> metres."""
    far_m = 500.0
    metres = np.array([0.1, 1.0, 5.0, 9.99, 50.0, 100.0, 327.0, 499.0, 600.0, 655.0, 655.04, 700.0, 1e6])
    with np.errstate(over="ignore"):
        stored = (metres * 100.0).astype(np.float16)
    back = depth_m_from_half_cm(stored, far_m)
    assert back.dtype == np.float32
    within = metres <= far_m
    # Rounding to the nearest half: error <= half the spacing there (0.25 cm at 5 m, 4 cm at 100 m, 16 cm at 499 m).
    allowed_m = np.array([half_spacing_cm(d * 100.0) / 2.0 for d in metres]) / 100.0
    assert np.all(np.abs(back[within] - metres[within]) <= allowed_m[within] + 1e-7)
    assert half_spacing_cm(10000.0) == 8.0 and half_spacing_cm(50000.0) == 32.0
    assert np.all(back[~within] == far_m)  # beyond far, at the 65,504 cm ceiling, and +inf: far
    # The ceiling itself: 655.04 m is the largest finite half; it reads as "beyond range".
    assert float(np.float16(HALF_MAX_CM)) == 65504.0
    assert depth_m_from_half_cm(np.array([np.float16(HALF_MAX_CM)]), 1000.0)[0] == 1000.0
    assert depth_m_from_half_cm(np.array([np.inf, np.nan]), 300.0).tolist() == [300.0, 300.0]


def test_png_reader_drops_alpha_without_applying_it(tmp_path):
    from PIL import Image

    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # alpha 0, as a capture may leave it
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgb.png")
    assert np.array_equal(read_png_rgb(tmp_path / "rgb.png", 6, 4), rgba[..., :3])
    with pytest.raises(RuntimeError, match="not 7x4"):
        read_png_rgb(tmp_path / "rgb.png", 7, 4)
