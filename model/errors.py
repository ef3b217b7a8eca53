"""The model's user-facing error.

`model/` imports only torch, numpy and open_clip (docs/architecture.md, "Layering"), so it cannot
raise `contract.errors.UserError`. It raises `ModelError` instead: a bad model config name, a clip
shape the VAE cannot take, sampler inputs of the wrong shape, unusable text-encoder weights. It has
the same interface as `UserError` (`message`, `hint`, `exit_code`, `one_line()`), and the command
line treats both alike: one red line, exit 2, no traceback (`pipeline/cli.py`). It is a
`ValueError`, so a caller that uses `model/` without worldloom's command line can catch it as one.
"""
from __future__ import annotations


class ModelError(ValueError):
    """A mistake the user can fix in a model config or a model call; the message names the field and the fix."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")

    def one_line(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        return " ".join(text.split())
