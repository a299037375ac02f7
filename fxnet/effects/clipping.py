"""Memoryless clippers (paper Eqs. 3-5), tanh drive, and SDR-targeted hard clipping.

With the input gain γ in dB, ``m = 10^(γ/20) x`` and the clipping threshold 1:

    hardclip:  y = clip(m, -1, 1)                                        (Eqs. 3-4)
    softclip:  y = m - m^3/3 for |m| <= 1, (2/3) sgn(m) otherwise         (Eq. 5)
    tanh:      y = tanh(x 10^(drive_dB/20))          (pedalboard's ``Distortion``)

:func:`clip_to_input_sdr` implements the SignalTrain-HC protocol: hard-clip each row at
the threshold θ that makes the input SDR ``10 log10(Σx² / Σ(x-y)²)`` equal a target.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fxnet.effects._common import as_rows, check_sample_rate, from_rows, knob_rows, physical
from fxnet.errors import UsageError
from fxnet.knobs import KnobSpec

HARDCLIP_KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("gain_db", 0.0, 50.0, "dB", 0.4, description="gain γ before clipping at ±1"),
)
SOFTCLIP_KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("gain_db", 0.0, 50.0, "dB", 0.4, description="gain γ before the cubic soft clipper"),
)
TANH_KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("drive_db", 0.0, 40.0, "dB", 0.4, description="gain before tanh"),
)


def _gain(db: np.ndarray) -> np.ndarray:
    return (10.0 ** (db / 20.0))[:, None]


def hardclip(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Hard clip ``x`` (..., samples) after a gain of knobs[0] -> [0, 50] dB; float32 out."""
    check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    (gain_db,) = physical(HARDCLIP_KNOBS, knob_rows(knobs, HARDCLIP_KNOBS, shape, "hardclip"))
    return from_rows(np.clip(rows * _gain(gain_db), -1.0, 1.0), shape)


def soft_clip_curve(m: np.ndarray) -> np.ndarray:
    """Eq. 5: m - m³/3 inside [-1, 1], ±2/3 outside (continuous, with zero slope at ±1).

    Evaluated as the cubic of clip(m, -1, 1), which is ±2/3 outside to within 1 ulp.
    """
    m = np.clip(m, -1.0, 1.0)
    return m - m * m * m / 3.0


def softclip(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Cubic soft clip of ``x`` (..., samples) after a gain of knobs[0] -> [0, 50] dB."""
    check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    (gain_db,) = physical(SOFTCLIP_KNOBS, knob_rows(knobs, SOFTCLIP_KNOBS, shape, "softclip"))
    return from_rows(soft_clip_curve(rows * _gain(gain_db)), shape)


def tanh_drive(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """tanh(x · 10^(drive_dB/20)) with knobs[0] -> drive in [0, 40] dB."""
    check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    (drive_db,) = physical(TANH_KNOBS, knob_rows(knobs, TANH_KNOBS, shape, "tanh"))
    return from_rows(np.tanh(rows * _gain(drive_db)), shape)


def input_sdr_db(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """10 log10(Σx² / Σ(x-y)²) per row (over the last axis), in dB; +inf where y == x."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.sum(x * x, axis=-1) / np.sum((x - y) ** 2, axis=-1))


def clip_threshold_for_sdr(x: np.ndarray, target_sdr_db: float | np.ndarray) -> np.ndarray:
    """Per-row hard-clip threshold θ > 0 with ``input_sdr_db(x, clip(x, -θ, θ)) == target``.

    ``x`` is (..., samples); ``target_sdr_db`` is a scalar or broadcasts to x.shape[:-1];
    targets must be > 0 dB (θ -> 0 gives 0 dB) and +inf means no clipping. Returns θ with
    shape x.shape[:-1] (float64). All-zero rows get θ = 0.

    The distortion energy D(θ) = Σ max(|x| - θ, 0)² is piecewise quadratic and decreasing
    in θ, with breakpoints at the sorted |x|. A binary search over the breakpoints (done
    for all rows at once as a count of breakpoints with D <= D*) finds the segment holding
    D* = Σx² 10^(-target/10), then the quadratic on that segment is solved exactly, so the
    result is exact to float64 rounding rather than to a bisection tolerance.
    """
    rows, shape = as_rows(x)
    target = np.broadcast_to(np.asarray(target_sdr_db, dtype=np.float64), shape[:-1]).reshape(-1)
    if np.any(np.isnan(target)) or np.any(target <= 0.0):
        raise UsageError("clip_to_input_sdr: target SDR must be > 0 dB (clipping to 0 gives 0 dB)")
    n_rows, n = rows.shape
    if n == 0 or n_rows == 0:
        return np.zeros(shape[:-1])
    a = -np.sort(-np.abs(rows), axis=-1)  # descending |x|
    s1 = np.concatenate([np.zeros((n_rows, 1)), np.cumsum(a, axis=-1)], axis=-1)  # s1[:, k] = Σ_{i<k} a_i
    s2 = np.concatenate([np.zeros((n_rows, 1)), np.cumsum(a * a, axis=-1)], axis=-1)
    energy = s2[:, -1]
    d_star = energy * 10.0 ** (-target / 10.0)
    k = np.arange(n)
    # D at θ = a_k: the k larger samples are clipped to a_k.
    d_break = s2[:, :-1] - 2.0 * a * s1[:, :-1] + k * a * a
    last = np.sum(d_break <= d_star[:, None], axis=-1) - 1  # last breakpoint with D <= D*
    m = last + 1  # samples above θ on the solution's segment
    idx = np.arange(n_rows)
    s1m, s2m = s1[idx, m], s2[idx, m]
    mean = s1m / m
    spread = np.maximum(s2m - s1m * mean, 0.0)  # Σ (a_i - mean)² over the m largest
    theta = mean - np.sqrt(np.maximum(d_star - spread, 0.0) / m)
    theta = np.clip(theta, 0.0, a[:, 0])
    theta = np.where(np.isinf(target), a[:, 0], theta)
    theta = np.where(energy > 0.0, theta, 0.0)
    return theta.reshape(shape[:-1])


def clip_to_input_sdr(x: np.ndarray, target_sdr_db: float | np.ndarray) -> np.ndarray:
    """Hard clip each row of ``x`` (..., samples) so that its input SDR is ``target_sdr_db``.

    The SignalTrain-HC protocol (targets uniform in [1, 20] dB for training, {1, 3, 5, 7,
    10, 15, 20} dB for testing). Returns float32 of x's shape; see
    :func:`clip_threshold_for_sdr` for the threshold itself.
    """
    theta = clip_threshold_for_sdr(x, target_sdr_db)[..., None]
    return np.clip(np.asarray(x, dtype=np.float64), -theta, theta).astype(np.float32)
