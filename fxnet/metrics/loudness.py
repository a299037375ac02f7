"""Integrated loudness (ITU-R BS.1770-4, LUFS) and the loudness difference of two signals.

Steps (BS.1770-4, Sec. 2 and Annex 1; EBU R 128 / Tech 3341 use the same measure):

1. K-weighting per channel: a high shelf (+4 dB above ~1.7 kHz, the head's effect) then
   a high-pass (RLB, ~38 Hz). The standard tabulates both biquads for 48 kHz only; here
   they are derived for any rate from their analogue prototypes through the bilinear
   transform with frequency prewarping (the analogue fit used by libebur128; pyloudnorm
   designs the same way), which reproduces the 48 kHz table to ~1e-8.
2. Mean square ``z_i`` of each channel over 400 ms blocks with 75 % overlap (100 ms hop).
3. Block loudness ``l_j = -0.691 + 10 log10(sum_i G_i z_ij)`` with channel weights G
   (1 for left, right, centre; 1.41 for the surrounds; LFE ignored).
4. Gating: drop blocks below -70 LUFS (absolute gate); then drop blocks more than 10 LU
   below the loudness of the mean power of the remaining ones (relative gate).
5. Integrated loudness = -0.691 + 10 log10(sum_i G_i mean_j z_ij) over the gated blocks.

A signal shorter than one 400 ms block is measured as one block covering all of it.
Silence (every block gated) reads -inf LUFS. A full-scale 997 Hz sine in one channel
reads -3.01 LUFS, so a -20 dBFS one reads -23.01 LUFS.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal as sps

from fxnet.errors import UsageError

__all__ = ["BLOCK_SECONDS", "channel_weights", "integrated_loudness", "k_weighting_sos", "loudness_difference", "lufs_diff"]

BLOCK_SECONDS = 0.4
HOP_SECONDS = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
#: Offset in the loudness formula (makes a 997 Hz sine at 0 dBFS in one channel read -3.01).
OFFSET_DB = -0.691

# Analogue prototypes of the two K-weighting stages (fitted to the BS.1770 48 kHz table).
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_FC = 1681.974450955533
_HIGHPASS_Q = 0.5003270373238773
_HIGHPASS_FC = 38.13547087602444


def k_weighting_sos(sample_rate: float) -> np.ndarray:
    """The two K-weighting biquads at ``sample_rate`` as scipy second-order sections (2, 6)."""
    if not sample_rate > 0:
        raise UsageError(f"sample rate must be positive, got {sample_rate}")
    # Stage 1: high shelf. K is the prewarped frequency tan(pi fc / fs).
    k = math.tan(math.pi * _SHELF_FC / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    # Stage 2: second-order high-pass (the standard keeps its numerator at 1, -2, 1).
    k = math.tan(math.pi * _HIGHPASS_FC / sample_rate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 weights G_i: 1 for L/R/C; 5 channels (L R C Ls Rs) and 6 (L R C LFE Ls Rs)
    give the surrounds 1.41 and the LFE 0; any other layout weighs every channel 1."""
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def _block_powers(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean square of the K-weighted signal per channel and gating block: (blocks, channels)."""
    weighted = sps.sosfilt(k_weighting_sos(sample_rate), audio, axis=-1)
    n = weighted.shape[-1]
    block = int(round(BLOCK_SECONDS * sample_rate))
    hop = int(round(HOP_SECONDS * sample_rate))
    if n < block:  # shorter than one gating block: one block over everything
        return np.mean(weighted**2, axis=-1)[None, :]
    count = 1 + (n - block) // hop
    # Block sums from a cumulative sum of squares: every block in O(samples) total.
    csum = np.concatenate([np.zeros((weighted.shape[0], 1)), np.cumsum(weighted**2, axis=-1)], axis=-1)
    starts = np.arange(count) * hop
    return ((csum[:, starts + block] - csum[:, starts]) / block).T


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness of ``audio`` (samples,) or (channels, samples), in LUFS.

    Channels are weighted and summed as BS.1770 prescribes (a mono file is one channel,
    so duplicating it to stereo reads +3.01 LU louder). Silence reads -inf.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[-1] == 0:
        raise UsageError(f"loudness needs (samples,) or (channels, samples) audio, got shape {x.shape}")
    z = _block_powers(x, sample_rate)  # (blocks, channels)
    weighted = z @ channel_weights(x.shape[0])
    with np.errstate(divide="ignore"):
        block_lufs = OFFSET_DB + 10.0 * np.log10(weighted)
    keep = block_lufs > ABSOLUTE_GATE_LUFS
    if not np.any(keep):
        return -math.inf
    relative_gate = OFFSET_DB + 10.0 * math.log10(float(np.mean(weighted[keep]))) + RELATIVE_GATE_LU
    keep &= block_lufs > relative_gate
    return OFFSET_DB + 10.0 * math.log10(float(np.mean(weighted[keep])))


def loudness_difference(est: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
    """Signed ``L(est) - L(ref)`` in LU (positive: the estimate is louder).

    Silence against silence is 0; silence against sound is -inf or +inf.
    """
    a, b = integrated_loudness(est, sample_rate), integrated_loudness(ref, sample_rate)
    if math.isinf(a) and math.isinf(b) and a == b:
        return 0.0
    return a - b


def lufs_diff(est: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
    """``|L(est) - L(ref)|`` in LU: how far the estimate's loudness is off (0 is perfect)."""
    return abs(loudness_difference(est, ref, sample_rate))
