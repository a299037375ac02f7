"""Shared plumbing for the reference effects: argument checks and batch reshaping.

Every effect has one call shape::

    effect(x: (..., samples) float array, sample_rate: int, knobs) -> float32, same shape

``knobs`` are normalised to [0, 1] in the order of the effect's ``KNOBS``. Either one
set for the whole batch (shape ``(K,)``) or one set per row (shape ``(..., K)``
matching the batch dimensions of ``x``), which is what training-data generation uses.
Effects compute in float64 and return float32.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fxnet.errors import KnobError, UsageError
from fxnet.knobs import KnobSpec

#: Knob values this far outside [0, 1] are rounding noise and get clipped, not refused.
_KNOB_TOLERANCE = 1e-6


def as_rows(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``x`` as a C-contiguous float64 (rows, samples) array and its original shape."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise UsageError("audio must have at least one dimension (..., samples), got a scalar")
    if not np.issubdtype(arr.dtype, np.floating):
        raise UsageError(f"audio must be a float array, got dtype {arr.dtype}")
    shape = arr.shape
    n_rows = int(np.prod(shape[:-1], dtype=np.int64))
    rows = np.ascontiguousarray(arr.reshape(n_rows, shape[-1]), dtype=np.float64)
    return rows, shape


def from_rows(y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo :func:`as_rows`: float32 in the caller's shape."""
    return np.asarray(y, dtype=np.float32).reshape(shape)


def check_sample_rate(sample_rate: int) -> int:
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise UsageError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    return int(sample_rate)


def knob_rows(
    knobs: Sequence[float] | np.ndarray,
    specs: Sequence[KnobSpec],
    shape: tuple[int, ...],
    effect: str,
) -> np.ndarray:
    """Check normalised knobs and return them as (rows, K) float64, one row per audio row.

    Switch knobs (``steps``) are snapped to their positions.
    """
    k = np.asarray(knobs, dtype=np.float64)
    n_knobs = len(specs)
    names = ", ".join(s.name for s in specs)
    if k.ndim == 0 or k.shape[-1] != n_knobs:
        raise KnobError(
            f"{effect} takes {n_knobs} normalised knob(s) ({names}), got shape {k.shape}"
        )
    batch = shape[:-1]
    try:
        k = np.broadcast_to(k, batch + (n_knobs,))
    except ValueError:
        raise KnobError(
            f"{effect}: per-row knobs of shape {k.shape} do not match audio of shape {shape}; "
            f"give ({n_knobs},) or {batch + (n_knobs,)}"
        ) from None
    k = k.reshape(-1, n_knobs)
    if not np.all(np.isfinite(k)):
        raise KnobError(f"{effect}: knob values must be finite")
    if np.any(k < -_KNOB_TOLERANCE) or np.any(k > 1 + _KNOB_TOLERANCE):
        raise KnobError(
            f"{effect}: knobs are normalised to [0, 1] ({names}); got values from "
            f"{k.min():g} to {k.max():g}. Use KnobSpec.to_normalised for physical values."
        )
    k = np.clip(k, 0.0, 1.0)
    for i, spec in enumerate(specs):
        if spec.steps and spec.steps > 1:
            k[:, i] = np.round(k[:, i] * (spec.steps - 1)) / (spec.steps - 1)
    return np.ascontiguousarray(k)


def physical(specs: Sequence[KnobSpec], k: np.ndarray) -> list[np.ndarray]:
    """Map (rows, K) normalised knobs to one physical-value array (rows,) per knob."""
    out = []
    for i, spec in enumerate(specs):
        lo, hi = spec.minimum, spec.maximum
        if spec.scale == "log":
            out.append(lo * (hi / lo) ** k[:, i])
        else:
            out.append(lo + (hi - lo) * k[:, i])
    return out
