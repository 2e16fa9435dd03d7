"""Exceptions for mistakes a user can make.

Anything derived from :class:`ClsctlError` is rendered by the CLI as a short message with no traceback and
exits with :attr:`ClsctlError.exit_code`. Bugs raise ordinary exceptions and keep their traceback.
"""

from __future__ import annotations

import signal


class ClsctlError(Exception):
    """A problem the user can fix (bad recipe, missing file, unknown name)."""

    exit_code: int = 2

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  {line}" for line in self.details)


class RecipeError(ClsctlError):
    """A recipe that does not validate; ``details`` holds one ``path: message (got X)`` line per problem."""


class UnknownNameError(ClsctlError, KeyError):
    """A name (model, transform, optimizer, ...) that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return ClsctlError.__str__(self)


class DataError(ClsctlError):
    """A dataset that cannot be read: missing folder, no images, bad annotation file."""


class CheckpointError(ClsctlError):
    """A file that is not a clsctl checkpoint, or one that does not fit the model."""


class CheckpointWriteError(ClsctlError):
    """A checkpoint could not be written (disk full, no permission, I/O error); the previous one is intact."""

    exit_code = 4


class TrainingDivergedError(ClsctlError):
    """The loss became NaN or infinite."""

    exit_code = 3


class TrainingInterrupted(ClsctlError):
    """Ctrl-C, SIGTERM or SIGUSR1 during training; ``last.pt`` holds the position it stopped at (or the last
    completed epoch).

    The exit code is what a shell reports for a process ended by that signal, 128 + its number: 130 for
    Ctrl-C (SIGINT), 143 for SIGTERM, 138 for SIGUSR1 (on Linux).
    """

    exit_code = 128 + signal.SIGINT

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)
