"""Crop geometry: the centred crop to the target aspect, the resize, and the intrinsics that follow them.

The one definition of how a source frame maps to a training frame: the loader, `sample --image`
and the eval's ground truth all crop and resize through here, so a model never sees two framings.
"""
from __future__ import annotations

import numpy as np
import torch

from contract.defaults import unknown_camera_intrinsics


def crop_box(source_height: int, source_width: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width): the centred crop of the source with the target aspect."""
    if source_width * height > width * source_height:  # source is wider: crop the sides
        crop_width, crop_height = round(source_height * width / height), source_height
    else:
        crop_width, crop_height = source_width, round(source_width * height / width)
    return (source_height - crop_height) // 2, (source_width - crop_width) // 2, crop_height, crop_width


def resize_frames(frames_THW3: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Centre-crop to the target aspect ratio, then area/bilinear resize -> (T, height, width, 3) uint8."""
    video = torch.from_numpy(frames_THW3)
    source_height, source_width = video.shape[1:3]
    if (source_height, source_width) == (height, width):
        return video
    top, left, crop_height, crop_width = crop_box(source_height, source_width, height, width)
    video = video[:, top: top + crop_height, left: left + crop_width].permute(0, 3, 1, 2).float()
    video = torch.nn.functional.interpolate(video, size=(height, width), mode="bilinear", antialias=True,
                                            align_corners=False)
    return video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def crop_resize_intrinsics(K: np.ndarray | None, source_height: int, source_width: int,
                            height: int, width: int) -> np.ndarray:
    """K of the source pixels -> K of the cropped and resized pixels (pinhole, OpenCV)."""
    if K is None:  # unknown camera: a 90-degree horizontal field of view, centred
        return unknown_camera_intrinsics(width, height)
    top, left, crop_height, crop_width = crop_box(source_height, source_width, height, width)
    shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]], dtype=np.float64)
    scale = np.diag([width / crop_width, height / crop_height, 1.0])
    return scale @ shift @ np.asarray(K, dtype=np.float64)
