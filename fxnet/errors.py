"""Every error fxnet raises on purpose, in one hierarchy.

Each class also inherits the built-in it resembles, so callers can catch either. The
CLI prints ``str(error)`` as one line and exits with ``error.exit_code``:
1 for a usage error (wrong option, unknown knob), 2 for a processing error (bad file,
bad checkpoint, failed download). Messages name the file and say what to do next.
"""

from __future__ import annotations

from pathlib import Path


class FxnetError(Exception):
    """Base class of all fxnet errors."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class UsageError(FxnetError, ValueError):
    """The command line asks for something impossible (exit code 1)."""

    exit_code = 1


class KnobError(UsageError):
    """Unknown knob name, wrong number of knobs, or a value out of range."""


class AudioError(FxnetError, OSError):
    """An audio file is missing, unreadable, corrupt, empty or holds NaN/Inf."""


class OutputError(FxnetError, OSError):
    """An output cannot be written (exists without --force, equals an input, unwritable)."""


class CheckpointError(FxnetError, ValueError):
    """A model file is truncated, corrupt, not an fxnet checkpoint, or inconsistent."""


class ModelNotFoundError(FxnetError, LookupError):
    """A model name resolves to nothing: not a path, not in any registry, not on the Hub."""


class DownloadError(FxnetError, OSError):
    """A download failed or its checksum did not match (the file is not kept)."""


class DataError(FxnetError, ValueError):
    """Training data is unusable (mismatched pairs, silence, misalignment...)."""


class TrainingError(FxnetError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN/Inf)."""
