"""The resume record of a running job: one JSON line per finished clip.

A line is appended only after the clip's outcome is final (for a kept clip: after its sample
bytes were flushed into the shard). On restart the journal and the committed shards say
exactly which clips are done, so nothing is written twice and nothing is skipped. A torn last
line (crash while writing) is ignored. When a run completes, the rows go into
`index.parquet` and the journal is removed.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = None

    def load(self) -> dict[str, dict[str, Any]]:
        """key -> latest row (a later line for the same key, e.g. a retried failure, wins)."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        with open(self.path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # torn last line
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                rows[row["key"]] = row
        return rows

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, sort_keys=True, default=_jsonable).encode() + b"\n"
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._truncate_torn_tail()
                self._file = open(self.path, "ab")
            self._file.write(line)
            self._file.flush()
        except OSError as error:
            from pipeline.shards.storage import with_path

            raise with_path(error, self.path) from None

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def rewrite(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the journal with exactly `rows`, atomically (temporary file, then rename)."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True, default=_jsonable).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            handle, self._file = self._file, None
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:  # a full disk fails the flush: the handle is closed all the same
                try:
                    handle.close()
                except OSError:
                    pass

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def _truncate_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
