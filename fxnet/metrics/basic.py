"""Sample-level metrics between an estimate and its reference: SI-SDR, SDR, ESR, L1, MR-STFT.

Contract: ``metric(est, ref) -> float`` with ``est`` and ``ref`` of the same shape, mono
``(samples,)`` or ``(channels, samples)`` (any leading dimensions: each leading index is
one row). Computed in float64 with numpy, so values are reproducible to ~1e-12 and do
not depend on torch. Ratios in dB (SI-SDR, SDR) are computed per row and averaged over
rows; energy ratios and distances (ESR, L1, MR-STFT) are pooled over all rows.

The training losses in :mod:`fxnet.train.losses` compute the same quantities in torch
for backpropagation; these are the evaluation versions.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import fft as spfft

from fxnet.errors import UsageError

__all__ = ["EPS", "MRSTFT_FFT_SIZES", "as_rows", "esr", "l1", "mrstft", "sdr", "si_sdr", "si_sdr_rows"]

#: torchmetrics' guard against 0/0 in SI-SDR: float64 machine epsilon.
EPS = float(np.finfo(np.float64).eps)
#: FFT sizes of the multi-resolution STFT distance (Yamamoto et al. 2020; auraloss).
MRSTFT_FFT_SIZES: tuple[int, ...] = (1024, 2048, 512)
#: Floor on the STFT power before the square root (auraloss' STFTLoss ``eps``).
MRSTFT_POWER_FLOOR = 1e-8


def as_rows(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals as float64 (rows, samples); shapes must match and hold samples."""
    e = np.asarray(est, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if e.shape != r.shape:
        raise UsageError(f"estimate and reference shapes differ: {e.shape} vs {r.shape}")
    if e.ndim == 0 or e.shape[-1] == 0:
        raise UsageError("metrics need at least one sample")
    return e.reshape(-1, e.shape[-1]), r.reshape(-1, r.shape[-1])


def si_sdr_rows(est: np.ndarray, ref: np.ndarray, *, zero_mean: bool = False) -> np.ndarray:
    """Per-row scale-invariant SDR in dB (Le Roux, Wisdom, Erdogan & Hershey 2019).

    ``alpha = (<est, ref> + eps) / (||ref||^2 + eps)``, ``SI-SDR = 10 log10((||alpha ref||^2 + eps)
    / (||alpha ref - est||^2 + eps))`` with eps the float64 machine epsilon, exactly as
    torchmetrics' ``scale_invariant_signal_distortion_ratio``. ``zero_mean=True`` first
    removes each row's mean (SI-SNR). Returns shape (rows,).
    """
    e, r = as_rows(est, ref)
    if zero_mean:
        e = e - e.mean(axis=-1, keepdims=True)
        r = r - r.mean(axis=-1, keepdims=True)
    alpha = (np.einsum("ij,ij->i", e, r) + EPS) / (np.einsum("ij,ij->i", r, r) + EPS)
    target = alpha[:, None] * r
    noise = target - e
    return 10.0 * np.log10((np.einsum("ij,ij->i", target, target) + EPS) / (np.einsum("ij,ij->i", noise, noise) + EPS))


def si_sdr(est: np.ndarray, ref: np.ndarray, *, zero_mean: bool = False) -> float:
    """Scale-invariant SDR in dB, averaged over rows (channels); higher is better.

    torchmetrics' definition (see :func:`si_sdr_rows`), no mean removal by default.

    Golden value: ref ``[3, -0.5, 2, 7]``, est ``[2.5, 0, 2, 8]`` -> 18.4030 dB
    (SI-SNR, ``zero_mean=True``: 15.0918 dB). Blind to any gain on ``est``, a polarity
    flip included; a delay of even one sample costs a lot at high frequencies.
    """
    return float(np.mean(si_sdr_rows(est, ref, zero_mean=zero_mean)))


def sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Plain SDR ``10 log10(||ref||^2 / ||ref - est||^2)`` in dB, averaged over rows.

    Not BSS-Eval's SDR (no distortion filter is allowed) and not scale-invariant: a gain
    error counts as distortion. With ``est`` the distorted input this is the "input SDR"
    of the declipping literature (Závišká et al. 2021; paper 001's SDR_inp). Rows with
    ``est == ref`` give +inf, a silent ``ref`` with a non-silent ``est`` gives -inf.
    """
    e, r = as_rows(est, ref)
    num = np.einsum("ij,ij->i", r, r)
    den = np.einsum("ij,ij->i", r - e, r - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = 10.0 * np.log10(num / den)
    values = np.where((num == 0.0) & (den == 0.0), np.inf, values)  # both silent: identical
    return float(np.mean(values))


def esr(est: np.ndarray, ref: np.ndarray) -> float:
    """Error-to-signal ratio ``sum (ref - est)^2 / sum ref^2`` pooled over all rows.

    The effect-modelling standard (Wright, Damskägg & Välimäki 2019; NAM: < 0.01 great,
    < 0.035 not bad). Unitless, >= 0, lower is better; 1 is as bad as silence. A silent
    reference gives 0 when ``est`` is silent too, else +inf.
    """
    e, r = as_rows(est, ref)
    err = float(np.sum((r - e) ** 2))
    energy = float(np.sum(r * r))
    if energy == 0.0:
        return 0.0 if err == 0.0 else math.inf
    return err / energy


def l1(est: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute error over all samples, in full-scale units (1.0 = 0 dBFS peak)."""
    e, r = as_rows(est, ref)
    return float(np.mean(np.abs(e - r)))


def _stft_magnitude(rows: np.ndarray, n_fft: int) -> np.ndarray:
    """|STFT| of each row in float32: periodic Hann window of n_fft, hop n_fft/4, no padding."""
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as torch.hann_window
    frames = np.lib.stride_tricks.sliding_window_view(rows.astype(np.float32), n_fft, axis=-1)[:, :: n_fft // 4]
    spec = spfft.rfft(frames * window, axis=-1, workers=-1)
    power = np.square(spec.real)
    power += np.square(spec.imag)
    return np.sqrt(np.maximum(power, np.float32(MRSTFT_POWER_FLOOR), out=power), out=power)


def mrstft(est: np.ndarray, ref: np.ndarray, *, fft_sizes: Sequence[int] = MRSTFT_FFT_SIZES) -> float:
    """Multi-resolution STFT distance (Yamamoto et al. 2020; auraloss' STFT losses).

    For each FFT size N (periodic Hann window of N samples, hop N/4, frames fully inside
    the signal, no padding), with magnitudes ``S = sqrt(max(|STFT|^2, 1e-8))`` of the
    reference and ``S^`` of the estimate, pooled over all rows:

        SC_N  = ||S - S^||_F / ||S||_F                    (spectral convergence)
        LM_N  = mean |log S - log S^|                     (log-magnitude distance)
        MRSTFT = mean over N of (SC_N + LM_N)

    N in (1024, 2048, 512) by default; sizes longer than the signal are skipped, and if
    none fits, the largest power of two that does is used. Spectra are float32, sums
    float64 (relative precision ~1e-6). Unitless, >= 0, lower is
    better; 0.5·est against est gives 0.5 + ln 2. The same as fxnet's training loss
    ``mrstft`` except for the floor (1e-8 on the power here, as auraloss).
    """
    e, r = as_rows(est, ref)
    length = e.shape[-1]
    sizes = [int(n) for n in fft_sizes if n <= length]
    if not sizes:
        sizes = [1 << max(1, int(math.log2(length)))] if length >= 2 else []
    if not sizes:
        raise UsageError("mrstft needs at least 2 samples")
    total = 0.0
    for n_fft in sizes:  # float32 spectra, float64 sums
        s_ref, s_est = _stft_magnitude(r, n_fft), _stft_magnitude(e, n_fft)
        ref_norm = math.sqrt(float(np.sum(np.square(s_ref), dtype=np.float64)))
        diff = s_ref - s_est
        sc = math.sqrt(float(np.sum(np.square(diff), dtype=np.float64))) / ref_norm
        np.divide(s_ref, s_est, out=diff)
        log_mag = float(np.mean(np.abs(np.log(diff, out=diff)), dtype=np.float64))
        total += sc + log_mag
    return total / len(sizes)
