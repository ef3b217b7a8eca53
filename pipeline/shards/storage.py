"""A full or read-only disk is an operating condition, not a bug: one line, not a traceback.

Every dataset writer (generate, curate, select/mix) ends with `StorageError` naming the path
and the cause. The writers are built so that this loses nothing: shards are committed by
rename, journal lines are appended after the sample's bytes, so the same command resumes
once there is room.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from contract.errors import UserError

STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EACCES, errno.EPERM})


class StorageError(UserError):
    """The disk refused a write (full, read-only, quota, permissions)."""

    exit_code = 1


def is_storage_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in STORAGE_ERRNOS


def storage_error(error: OSError, root: Path) -> StorageError:
    path = error.filename or root
    cause = error.strerror or os.strerror(error.errno or 0)
    return StorageError(f"cannot write {path}: {cause}",
                        hint=f"completed clips are kept in {root}; free space (or make it writable) and re-run the "
                             "same command to resume")


def with_path(error: OSError, path: Path | str) -> OSError:
    """The same error with `filename` set (writes through file objects carry none)."""
    if error.filename:
        return error
    return OSError(error.errno, error.strerror or os.strerror(error.errno or 0), str(path))
