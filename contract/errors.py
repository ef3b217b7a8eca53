"""User-facing errors.

A `UserError` is a mistake the user can fix (bad manifest, missing file, unreachable server).
The CLI prints it as one line and exits non-zero; it never shows a traceback. Anything else
is a bug in worldloom and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message names the file, the field and the fix."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")

    def one_line(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        return " ".join(text.split())
