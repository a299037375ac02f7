"""Distortions to *remove*: the training and test corruptions of ``fxnet remove``.

For removal the target is the clean signal, so each corruption here keeps the clean
signal's scale: what passes undistorted (quiet passages) passes unchanged, and the
remover never has to guess an unknown gain.

- ``clip_sdr``: hard clipping at a given input SDR, the SignalTrain-HC protocol of paper
  001 (train: uniform in [1, 20] dB; test: {1, 3, 5, 7, 10, 15, 20} dB), threshold solved
  exactly per row (:func:`fxnet.effects.clipping.clip_threshold_for_sdr`).
- ``overdrive_ceg``: SoX overdrive with its dry mix (``0.5 x + 0.75 y``), gain 20-50 dB,
  colour 20: paper 001's CEG-OD set. The dry part is at half scale; the target is ``x``.
- ``distortion``: one of four kinds per row, for the general remover:
  hard clip at an input SDR of 20..1 dB; cubic soft clip and tanh saturation at a
  threshold θ 0..24 dB below the row's peak, as ``θ·S(x/θ)`` (identity for |x| ≪ θ);
  or ``overdrive_ceg``. Knobs: ``kind`` (a 4-position switch) and ``amount`` (0..1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fxnet.effects._common import as_rows, check_sample_rate, from_rows, knob_rows, physical
from fxnet.effects.clipping import clip_threshold_for_sdr, soft_clip_curve
from fxnet.effects.overdrive import sox_overdrive
from fxnet.knobs import KnobSpec

CLIP_SDR_KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("input_sdr_db", 1.0, 20.0, "dB", 0.5, description="input SDR of the clipped signal (lower = heavier)"),
)
OVERDRIVE_CEG_KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("gain_db", 20.0, 50.0, "dB", 0.5, description="sox overdrive gain (colour 20, dry mixed in)"),
)
KINDS = ("hardclip", "softclip", "tanh", "overdrive")
DISTORTION_KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("kind", 0.0, 3.0, "", 0.0, steps=4, description="0 hard clip, 1 soft clip, 2 tanh, 3 sox overdrive"),
    KnobSpec("amount", 0.0, 1.0, "", 0.5,
             description="hard clip: input SDR 20..1 dB; soft/tanh: threshold 0..24 dB below the peak; "
                         "overdrive: gain 20..50 dB"),
)
#: Soft clip / tanh: the threshold lies this many dB below the row's peak at amount 1.
SATURATION_RANGE_DB = 24.0


def clip_sdr(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Hard clip each row of ``x`` at the input SDR knobs[0] -> [1, 20] dB."""
    check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    (sdr,) = physical(CLIP_SDR_KNOBS, knob_rows(knobs, CLIP_SDR_KNOBS, shape, "clip_sdr"))
    theta = clip_threshold_for_sdr(rows, sdr)[:, None]
    return from_rows(np.clip(rows, -theta, theta), shape)


def overdrive_ceg(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """SoX overdrive, gain knobs[0] -> [20, 50] dB, colour 20 (dry mixed in, as sox does)."""
    check_sample_rate(sample_rate)
    _, shape = as_rows(x)
    (gain_db,) = physical(OVERDRIVE_CEG_KNOBS, knob_rows(knobs, OVERDRIVE_CEG_KNOBS, shape, "overdrive_ceg"))
    return sox_overdrive(x, gain_db.reshape(shape[:-1]), 20.0)


def _saturate(rows: np.ndarray, amount: np.ndarray, curve) -> np.ndarray:
    peak = np.max(np.abs(rows), axis=-1, keepdims=True)
    theta = np.maximum(peak * 10.0 ** (-SATURATION_RANGE_DB * amount[:, None] / 20.0), 1e-9)
    return theta * curve(rows / theta)


def distortion(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """One of hard clip / soft clip / tanh / sox overdrive per row; knobs [kind, amount]."""
    check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    kind, amount = physical(DISTORTION_KNOBS, knob_rows(knobs, DISTORTION_KNOBS, shape, "distortion"))
    kind = np.rint(kind).astype(np.int64)
    out = np.empty_like(rows)
    for k in np.unique(kind):  # at most four vectorised calls
        sel = kind == k
        r, a = rows[sel], amount[sel]
        if k == 0:
            theta = clip_threshold_for_sdr(r, 20.0 - 19.0 * a)[:, None]
            out[sel] = np.clip(r, -theta, theta)
        elif k == 1:
            out[sel] = _saturate(r, a, soft_clip_curve)
        elif k == 2:
            out[sel] = _saturate(r, a, np.tanh)
        else:
            out[sel] = sox_overdrive(r, 20.0 + 30.0 * a, 20.0)
    return from_rows(out, shape)
