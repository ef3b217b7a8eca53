"""The loader's two failures that stop a run, each one line (they cross process boundaries intact)."""
from __future__ import annotations

from contract.errors import UserError


def _rebuild(cls: type, message: str, hint: str | None) -> UserError:
    return cls(message, hint=hint)


class DataDamaged(UserError):
    """`data.on_damaged: stop` and a shard or sample that is not what its dataset recorded."""

    exit_code = 1

    def __reduce__(self):  # picklable across DataLoader and Ray worker processes (plain strings only)
        return (_rebuild, (type(self), self.message, self.hint))


class DataStarved(UserError):
    """A reader went a whole pass over its shards without one clip long enough for a window."""

    exit_code = 1

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.hint))
