"""Sample keys are file names too: the one check every reader and writer applies.

A key reaches the filesystem in `worldloom inspect` (`previews/<key>.gif`), in curate's staging
area and in anything a user builds on the shards, so a shard whose tar member is called
`/etc/passwd.mp4` or `../../x.mp4` must never be followed. Keys are plain names: ASCII letters,
digits, `_` and `-`, starting with a letter or digit, at most 200 characters, no dots (WebDataset
splits keys at the first dot). Generate (`<sha12>_<scene>_<clip:05d>`), curate and encode keys
all match.
"""
from __future__ import annotations

import re
from pathlib import Path

from contract.errors import UserError

KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,199}")


class UnsafeKey(UserError):
    """A sample key that is not a plain file name (absolute path, `..`, separators, dots)."""


def is_safe_key(key: object) -> bool:
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


def check_key(key: object, *, where: str = "") -> str:
    """Return `key` if it is a plain name, else raise `UnsafeKey` naming where it came from."""
    if not is_safe_key(key):
        place = f"{where}: " if where else ""
        raise UnsafeKey(f"{place}sample key {str(key)[:80]!r} is not a plain name",
                        hint="keys may hold only letters, digits, '_' and '-' (at most 200); "
                             "the shard was not written by worldloom or was tampered with")
    return key  # type: ignore[return-value]


def key_path(folder: Path, key: str, suffix: str, *, where: str = "") -> Path:
    """`folder / (key + suffix)`, after checking the key; the result is always inside `folder`."""
    check_key(key, where=where)
    if "/" in suffix or "\\" in suffix or ".." in suffix:
        raise ValueError(f"bad suffix {suffix!r}")
    path = Path(folder) / f"{key}{suffix}"
    # belt and braces: the pattern already rules out separators
    if path.parent != Path(folder):
        raise UnsafeKey(f"{where}: sample key {key!r} escapes {folder}")
    return path
