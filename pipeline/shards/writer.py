"""Atomic, deterministic WebDataset shard writing.

A shard is written as `shard-NNNNNN.tar.tmp` and renamed to `shard-NNNNNN.tar` only when it
is full (or the run ends), so a reader globbing `*.tar` never sees a partial shard. Every
tar header is fixed (mtime 0, uid/gid 0, mode 0444), so the same samples in the same order
give the same bytes. After each sample the file is flushed; a run that stops (SIGINT or a
crash) leaves the `.tmp` behind, and `ShardWriter.resume` cuts it back to the last sample
the journal recorded and keeps appending, which finishes the partial shard.
"""
from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from pipeline.shards.integrity import DamagedShard, file_sha256, member_digests
from pipeline.shards.keys import is_safe_key
from pipeline.shards.layout import DatasetLayout, shard_name, shard_number
from pipeline.shards.storage import with_path

DEFAULT_MAX_BYTES = 500_000_000
_BLOCK = tarfile.BLOCKSIZE


def relative_shard_path(number: int) -> str:
    """How the index and the journal name a shard: relative to the dataset root."""
    return f"shards/{shard_name(number)}"


def _tar_member_bytes(size: int) -> int:
    """Bytes a member takes in a GNU tar: one header block plus data padded to 512."""
    return _BLOCK + ((size + _BLOCK - 1) // _BLOCK) * _BLOCK


def sample_size(members: Mapping[str, bytes]) -> int:
    return sum(_tar_member_bytes(len(data)) for data in members.values())


def _check_key(key: str) -> None:
    if not is_safe_key(key):
        raise ValueError(f"sample key {key!r} must be a plain name: letters, digits, '_' and '-' "
                         "(no '.', WebDataset splits at dots; no '/', keys become file names)")


class ShardWriter:
    """Append samples (key + `{extension: bytes}`) to numbered shards of at most `max_bytes`.

    `write` returns the shard name the sample went into. A sample larger than `max_bytes`
    gets a shard of its own. Call `close()` to commit the last shard; `suspend()` instead
    leaves it as `.tmp` for a later `resume`.

    Digests (docs/shard-schema.md, "Integrity"): after `write`, `last_member_sha256` holds the
    sample's `{extension: sha256}` for the index; `commit` records the whole file's sha256 in
    `shard_sha256` for `dataset.json`.
    """

    def __init__(
        self,
        layout: DatasetLayout,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_count: int | None = None,
        next_number: int = 0,
    ) -> None:
        self.layout = layout
        self.max_bytes = int(max_bytes)
        self.max_count = max_count
        self.next_number = next_number
        self.layout.shards_dir.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = None
        self._tar: tarfile.TarFile | None = None
        self._number: int = -1
        self._count = 0
        self._bytes = 0
        self.committed: list[str] = []
        self.last_member_sha256: dict[str, str] = {}
        self.shard_sha256: dict[str, str] = {}     # "shards/shard-NNNNNN.tar" -> sha256 of the committed file

    # -- writing -----------------------------------------------------------------------
    @property
    def current_shard(self) -> str | None:
        return relative_shard_path(self._number) if self._tar is not None else None

    def write(self, key: str, members: Mapping[str, bytes]) -> str:
        try:
            return self._write(key, members)
        except OSError as error:
            raise with_path(error, self.layout.tmp_shard_path(self._number if self._tar is not None else self.next_number)) from None

    def _write(self, key: str, members: Mapping[str, bytes]) -> str:
        _check_key(key)
        for extension in members:
            if not extension or "/" in extension:
                raise ValueError(f"bad member extension {extension!r} for sample {key}")
        size = sample_size(members)
        if self._tar is not None and self._count > 0:
            too_big = self._bytes + size > self.max_bytes
            too_many = self.max_count is not None and self._count >= self.max_count
            if too_big or too_many:
                self.commit()
        if self._tar is None:
            self._open(self.next_number)
        assert self._tar is not None and self._file is not None
        for extension, data in members.items():
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o444
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._file.flush()
        self._count += 1
        self._bytes += size
        self.last_member_sha256 = member_digests(members)
        return relative_shard_path(self._number)

    def commit(self) -> str | None:
        """Finish the open shard (end-of-archive blocks, fsync) and rename it into place."""
        if self._tar is None:
            return None
        try:
            return self._commit()
        except OSError as error:
            raise with_path(error, self.layout.tmp_shard_path(self._number)) from None

    def _commit(self) -> str | None:
        assert self._file is not None
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.layout.shard_path(self._number)
        os.replace(self.layout.tmp_shard_path(self._number), final)
        name = relative_shard_path(self._number)
        self.committed.append(name)
        self.shard_sha256[name] = file_sha256(final)
        self._tar = None
        self._file = None
        self._count = 0
        self._bytes = 0
        return name

    def close(self) -> None:
        self.commit()

    def suspend(self) -> None:
        """Stop without committing: the `.tmp` stays for `resume` (it never looks complete)."""
        handle, self._file, self._tar = self._file, None, None
        if handle is not None:
            try:
                handle.flush()
            finally:  # a full disk fails the flush: the handle is closed all the same
                try:
                    handle.close()
                except OSError:
                    pass

    def _open(self, number: int, *, append_at: int | None = None) -> None:
        path = self.layout.tmp_shard_path(number)
        if append_at is None:
            self._file = open(path, "wb")
        else:
            self._file = open(path, "r+b")
            self._file.seek(append_at)
            self._file.truncate()
        # mode "w" on a file object starts writing at its current position
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.GNU_FORMAT)
        self._number = number
        self.next_number = number + 1

    # -- resume ------------------------------------------------------------------------
    @classmethod
    def resume(
        cls,
        layout: DatasetLayout,
        journaled: Mapping[str, list[str]],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_count: int | None = None,
        digests: Mapping[str, Mapping[str, str] | None] | None = None,
    ) -> tuple[ShardWriter, set[str]]:
        """Reopen a dataset: keep the journaled samples of a leftover `.tmp`, drop the rest.

        `journaled` maps shard path ("shards/shard-NNNNNN.tar") -> keys the journal says were written there. Returns the
        writer (positioned to append to the recovered partial shard, if any) and the keys
        recovered from `.tmp` shards. Leftover `.tmp` shards other than the last are
        dropped together with their samples (they are rendered again). With `digests`
        (key -> the journal's `member_sha256`), a recovered sample must also hash to what the
        journal recorded; the `.tmp` is cut before the first one that does not.
        """
        committed = [shard_number(p.name) for p in layout.complete_shards()]
        temporaries = sorted(layout.shards_dir.glob("shard-*.tar.tmp")) if layout.shards_dir.is_dir() else []
        next_number = max(committed, default=-1) + 1
        writer = cls(layout, max_bytes=max_bytes, max_count=max_count, next_number=next_number)
        recovered: set[str] = set()
        for tmp in temporaries:
            number = shard_number(tmp.name)
            wanted = journaled.get(relative_shard_path(number), [])
            if number != next_number or not wanted:
                tmp.unlink()
                continue
            end, keys, size = _prefix_with_keys(tmp, wanted, digests or {})
            if not keys:
                tmp.unlink()
                continue
            writer._open(number, append_at=end)
            writer._count = len(keys)
            writer._bytes = size
            recovered.update(keys)
        return writer, recovered


def _prefix_with_keys(path: Path, wanted: list[str],
                      digests: Mapping[str, Mapping[str, str] | None]) -> tuple[int, list[str], int]:
    """Longest prefix of whole samples in a (possibly truncated) tar whose keys are journaled.

    A sample counts when its key is journaled (journal lines are written after the sample's
    bytes were flushed) and, when the journal has its digests, its members hash to them.
    Returns (byte offset where the prefix ends, its keys in order, its accounted size).
    """
    import hashlib

    wanted_set = set(wanted)
    samples: list[tuple[str, int, int, dict[str, str]]] = []  # key, end offset, size, digests
    current: list = []   # [key, end, size, digests]
    file_size = path.stat().st_size
    try:
        with tarfile.open(path, mode="r:", format=tarfile.GNU_FORMAT) as archive:
            for member in archive:
                key, _, extension = member.name.partition(".")
                member_end = member.offset_data + ((member.size + _BLOCK - 1) // _BLOCK) * _BLOCK
                if member_end > file_size:
                    break
                extracted = archive.extractfile(member)
                data = extracted.read() if extracted is not None else b""
                if len(data) != member.size:
                    break
                if not current or key != current[0]:
                    if current:
                        samples.append(tuple(current))  # type: ignore[arg-type]
                    current = [key, 0, 0, {}]
                current[1] = member_end
                current[2] += _tar_member_bytes(member.size)
                current[3][extension] = hashlib.sha256(data).hexdigest()
    except (tarfile.TarError, EOFError):
        pass
    if current:
        samples.append(tuple(current))  # type: ignore[arg-type]
    keys: list[str] = []
    end = size = 0
    for key, sample_end, sample_size_, sample_digests in samples:
        if key not in wanted_set:
            break
        expected = digests.get(key)
        if expected is not None and dict(expected) != sample_digests:
            break  # damaged, or its last members never reached the disk
        keys.append(key)
        end, size = sample_end, size + sample_size_
    return end, keys, size


def read_tar_samples(path: Path, *, keys: set[str] | None = None,
                     plain_keys: bool = True) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Samples of one tar in order: (key, {extension: bytes}). Keys split at the first dot.

    With `keys`, other samples are skipped without reading their bytes. A truncated file, a
    file that is not a tar, or a member that is not `<plain key>.<extension>` raises
    `DamagedShard` naming the file (a one-line error, never a traceback). `plain_keys=False`
    (the training loader, where a key never becomes a path) accepts any non-empty key, as
    plain WebDataset does.
    """
    path = Path(path)
    try:
        archive = tarfile.open(path, mode="r:")
    except (tarfile.TarError, EOFError) as error:
        raise DamagedShard(path, f"not a tar: {error}") from None
    with archive:
        current: str | None = None
        members: dict[str, bytes] = {}
        iterator = iter(archive)
        while True:
            try:
                member = next(iterator)
            except StopIteration:
                break
            except (tarfile.TarError, EOFError) as error:
                raise DamagedShard(path, f"unreadable after sample {current!r}: {error}") from None
            if not member.isfile():
                continue
            key, dot, extension = member.name.partition(".")
            if not dot or not extension or not key or (plain_keys and not is_safe_key(key)):
                raise DamagedShard(path, f"member {member.name[:80]!r} is not <key>.<extension> with a plain key")
            if key != current and current is not None:
                if keys is None or current in keys:
                    yield current, members
                members = {}
            current = key
            if keys is not None and key not in keys:
                continue
            try:
                extracted = archive.extractfile(member)
                assert extracted is not None
                data = extracted.read()
            except (tarfile.TarError, EOFError) as error:
                raise DamagedShard(path, f"truncated in {member.name[:80]!r}: {error}") from None
            if len(data) != member.size:
                raise DamagedShard(path, f"truncated in {member.name[:80]!r}")
            members[extension] = data
        # a tar cut exactly between members reads "cleanly": require the end-of-archive blocks
        if archive.offset + 2 * _BLOCK > path.stat().st_size:
            raise DamagedShard(path, f"truncated after sample {current!r}: no end-of-archive marker")
        if current is not None and (keys is None or current in keys):
            yield current, members
