"""Segmentation ids assigned explicitly by the world builder.

An id is `class_code * 1000 + instance` (instance counted from 1 in build order), so the id says
what a pixel is (`id // 1000`) and which object it is, and stays the same for the same resolved
clip because build order is a pure function of the clip. 0 is sky/background. Ids never derive
from names or from PyBullet body unique ids (AirSim's name-hash ids collide; see the field guide).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SKY = 0
INSTANCES_PER_CLASS = 1000

# class name -> class code; append only (codes are part of the data format).
CLASS_CODES: dict[str, int] = {
    "ground": 1,
    "terrain": 2,
    "road": 3,
    "sidewalk": 4,
    "building": 5,
    "tree": 6,
    "vehicle": 7,
    "ego_vehicle": 8,
    "prop": 9,
    "rock": 10,
    "lane_marking": 11,
}

# Classes that count as "ground" for wetness darkening.
GROUND_CLASSES = ("ground", "terrain", "road", "sidewalk", "lane_marking")


def class_of(segment_id: int | np.ndarray) -> int | np.ndarray:
    """The class code of a segmentation id (0 for sky)."""
    return segment_id // INSTANCES_PER_CLASS


@dataclass
class SegmentationIds:
    """Maps PyBullet body unique ids to the stable ids written into the segmentation pass."""

    body_to_id: dict[int, int] = field(default_factory=dict)
    _next_instance: dict[str, int] = field(default_factory=dict)
    _lookup: np.ndarray | None = None

    def assign(self, body_uid: int, class_name: str) -> int:
        """Give `body_uid` the next id of `class_name`; returns the id."""
        if class_name not in CLASS_CODES:
            raise KeyError(f"unknown segmentation class {class_name!r}")
        instance = self._next_instance.get(class_name, 0) + 1
        if instance >= INSTANCES_PER_CLASS:
            instance = INSTANCES_PER_CLASS - 1  # saturate: the class stays right, instances merge
        self._next_instance[class_name] = instance
        segment_id = CLASS_CODES[class_name] * INSTANCES_PER_CLASS + instance
        self.body_to_id[int(body_uid)] = segment_id
        self._lookup = None
        return segment_id

    def lookup_table(self) -> np.ndarray:
        """int32 array indexed by body uid + 1 (so PyBullet's -1 background lands on index 0)."""
        if self._lookup is None:
            size = (max(self.body_to_id) + 2) if self.body_to_id else 1
            table = np.zeros(size, dtype=np.int32)
            for uid, segment_id in self.body_to_id.items():
                table[uid + 1] = segment_id
            self._lookup = table
        return self._lookup

    def map_mask(self, raw_mask: np.ndarray) -> np.ndarray:
        """Raw PyBullet mask (body uid, -1 background) -> stable ids, vectorised."""
        table = self.lookup_table()
        index = np.asarray(raw_mask, dtype=np.int64) + 1
        outside = (index < 0) | (index >= len(table))  # bodies the builder never registered
        return np.where(outside, SKY, table[np.clip(index, 0, len(table) - 1)]).astype(np.int32)

    def class_mask(self, segmentation: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
        codes = [CLASS_CODES[name] for name in class_names]
        return np.isin(segmentation // INSTANCES_PER_CLASS, codes)
