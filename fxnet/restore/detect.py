"""Hard-clipping detection: the clipping levels θc and the masks of clipped samples.

Declippers such as A-SPADE (Kitić et al. 2015) need to know which samples are
*reliable* and which were clipped high or low; the survey of Záviška et al. (2021)
takes them as the samples at ±max|y|. This module estimates them from the signal alone.

Detection rule (per channel, separately for the positive and the negative side):

1. The candidate level is the extreme value, ``L = max(x)`` (high side) or ``min(x)``
   (low side); a side whose extreme is 0 or of the wrong sign has no clipping.
2. *Plateau* samples are those within ``tolerance · |L|`` of L (relative tolerance,
   default 1e-4: exact float plateaus, and ±1 LSB of 16-bit dither at full scale).
3. The side is clipped when there are at least :data:`MIN_CLIPPED_SAMPLES` plateau
   samples *and* at least :data:`MIN_PLATEAU_RATIO` times as many as in the band just
   below the plateau, as wide as the plateau band or one quantisation step of the
   signal (for integer-coded audio), whichever is wider.

The ratio test is what separates a real plateau from a natural peak: near a smooth
maximum (a sine, any band-limited peak) the sample density follows the arcsine law
∝ 1/√(L - x), so the top band holds only √2 + 1 ≈ 2.4 times the band below it, however
long the signal, whereas hard clipping piles every clipped sample onto L and leaves
the band below nearly empty. Signals clipped below full scale and then normalised
keep their plateau (a gain maps equal samples to equal samples), and asymmetric
clipping is found because each side has its own level. A signal that really is flat
at its extremes (a square wave, a DC step at the peak) is reported as clipped: it is
indistinguishable from a clipped one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np

from fxnet.errors import UsageError

__all__ = ["ClipReport", "DEFAULT_TOLERANCE", "clip_masks", "detect_clipping"]

#: Default relative tolerance of the plateau (fraction of the clipping level).
DEFAULT_TOLERANCE = 1e-4
#: A side needs at least this many plateau samples to be called clipped.
MIN_CLIPPED_SAMPLES = 8
#: ... and this many times as many as in the band just below the plateau.
MIN_PLATEAU_RATIO = 4.0


@dataclass(frozen=True)
class ClipReport:
    """What :func:`detect_clipping` found.

    ``threshold`` is the largest detected clipping level over channels and sides (the
    peak ``max|x|`` when nothing is clipped, 0 for silence). ``levels_high`` and
    ``levels_low`` hold, per channel, the positive magnitude of the clipping level of
    each side, or ``inf`` where that side is not clipped.
    """

    threshold: float
    clipped_fraction: float
    clipped_samples: int
    total_samples: int
    clipped: bool
    levels_high: tuple[float, ...] = ()
    levels_low: tuple[float, ...] = ()
    tolerance: float = DEFAULT_TOLERANCE

    def to_dict(self) -> dict:
        """JSON-ready dict (``None`` for a side without clipping)."""

        def levels(values: tuple[float, ...]) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in values]

        return {
            "threshold": self.threshold,
            "clipped_fraction": self.clipped_fraction,
            "clipped_samples": self.clipped_samples,
            "total_samples": self.total_samples,
            "clipped": self.clipped,
            "levels_high": levels(self.levels_high),
            "levels_low": levels(self.levels_low),
            "tolerance": self.tolerance,
        }


def _rows(x: np.ndarray) -> np.ndarray:
    """(channels, samples) float32 or float64, as given: a 10-minute stereo file is not
    copied to float64 (424 MB). Thresholds are compared as float64 scalars, so float32
    samples compare exactly as their float64 values would."""
    a = np.asarray(x)
    if a.ndim not in (1, 2):
        raise UsageError(f"clipping detection needs (samples,) or (channels, samples) audio, got shape {a.shape}")
    a = np.atleast_2d(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise UsageError("clipping detection: the audio holds NaN or Inf")
    return a


def _f64(v: float) -> np.float64:
    """A threshold for comparisons with float32 samples: a plain Python float would be
    rounded to float32 first (NumPy 2 promotion), a float64 scalar is not."""
    return np.float64(v)


def _quantum(values: np.ndarray, peak: float) -> float:
    """Smallest positive spacing between distinct sample values in the top quarter of
    the range: the quantisation step of integer-coded audio (1/32768 times any gain),
    negligible for float audio. ``values`` is one side's samples, oriented so that the
    side's extreme is their maximum."""
    top = np.unique(values[values >= _f64(0.75 * peak)]).astype(np.float64)
    steps = np.diff(top)
    return float(steps.min()) if steps.size else 0.0


def _side_levels(rows: np.ndarray, tolerance: float, sign: int) -> np.ndarray:
    """Clipping level magnitude of one side per row (inf where not clipped): the high
    side for ``sign`` +1, the low side for -1."""
    levels = np.full(rows.shape[0], np.inf)
    for i, row in enumerate(rows):  # a few channels; each step is vectorised
        peak = float(row.max()) if sign > 0 else -float(row.min())
        if peak <= 0.0:
            continue
        band = tolerance * peak
        # The comparison band is at least one quantisation step wide, or a smooth peak
        # of integer-coded audio would show an empty band below its top code value.
        near_peak = row >= _f64(0.75 * peak) if sign > 0 else row <= _f64(-0.75 * peak)
        top_quarter = sign * row[near_peak]  # small: only the loudest samples
        width = max(band, _quantum(top_quarter, peak))
        if peak - band - width < 0.75 * peak:  # a coarse quantum: the band reaches below the top quarter
            top_quarter = sign * row.astype(np.float64)
        gap = peak - top_quarter[top_quarter >= _f64(peak - band - width)].astype(np.float64)
        top = int(np.count_nonzero(gap <= band))
        if top < MIN_CLIPPED_SAMPLES:
            continue
        below = int(np.count_nonzero(gap > band))
        if top >= MIN_PLATEAU_RATIO * below:
            levels[i] = peak
    return levels


def detect_clipping(x: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE) -> ClipReport:
    """Detect hard clipping in ``x`` ((samples,) or (channels, samples), float).

    See the module docstring for the rule. Samples within ``tolerance · level`` of a
    detected level count as clipped.
    """
    if not 0.0 < tolerance < 0.5:
        raise UsageError(f"clipping tolerance must be in (0, 0.5), got {tolerance}")
    rows = _rows(x)
    total = int(rows.size)
    if rows.shape[-1] == 0:
        return ClipReport(0.0, 0.0, 0, 0, False, (), (), tolerance)
    high = _side_levels(rows, tolerance, +1)
    low = _side_levels(rows, tolerance, -1)
    detected = np.concatenate([high[np.isfinite(high)], low[np.isfinite(low)]])
    high_t, low_t = tuple(map(float, high)), tuple(map(float, low))
    count = 0
    for row, hi, lo in zip(rows, high, low):  # the masks' counts, without the masks
        if np.isfinite(hi):
            count += int(np.count_nonzero(row >= _f64(hi * (1.0 - tolerance))))
        if np.isfinite(lo):
            count += int(np.count_nonzero(row <= _f64(-lo * (1.0 - tolerance))))
    peak = max(float(rows.max()), -float(rows.min()))
    threshold = float(detected.max()) if detected.size else peak
    return ClipReport(
        threshold=threshold,
        clipped_fraction=count / total if total else 0.0,
        clipped_samples=count,
        total_samples=total,
        clipped=bool(detected.size),
        levels_high=high_t,
        levels_low=low_t,
        tolerance=tolerance,
    )


def _masks(
    rows: np.ndarray, high: np.ndarray, low: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hi_mask = rows >= (high * (1.0 - tolerance))[:, None]
    lo_mask = rows <= (-low * (1.0 - tolerance))[:, None]
    return ~(hi_mask | lo_mask), hi_mask, lo_mask


def clip_masks(
    x: np.ndarray, report_or_threshold: Union[ClipReport, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reliable, clipped_high, clipped_low) boolean masks of x's shape.

    With a :class:`ClipReport` the per-channel, per-side levels it found are used (no
    mask for a side that is not clipped). With a number θ > 0 clipping is symmetric:
    samples >= θ(1 - tol) are clipped high and <= -θ(1 - tol) clipped low, with the
    default relative tolerance so that a level typed as 0.7 matches float32 0.7.
    """
    rows = _rows(x)
    shape = np.shape(x)
    if isinstance(report_or_threshold, ClipReport):
        rep = report_or_threshold
        if len(rep.levels_high) != rows.shape[0]:
            raise UsageError(
                f"clip report is for {len(rep.levels_high)} channel(s), the audio has {rows.shape[0]}"
            )
        high, low, tol = np.array(rep.levels_high), np.array(rep.levels_low), rep.tolerance
    else:
        theta = float(report_or_threshold)
        if not (math.isfinite(theta) and theta > 0.0):
            raise UsageError(f"clipping threshold must be a positive number, got {report_or_threshold}")
        high = low = np.full(rows.shape[0], theta)
        tol = DEFAULT_TOLERANCE
    masks = _masks(rows, high, low, tol)
    return tuple(m.reshape(shape) for m in masks)  # type: ignore[return-value]
