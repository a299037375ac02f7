"""Dry/wet pair checks and latency measurement by FFT cross-correlation.

A re-amped capture comes back late by the interface's round-trip latency. The lag is
the ``l`` that maximises ``|r(l)|`` with ``r(l) = sum_t wet[t] dry[t - l]`` over
``|l| <= max_lag``; positive means the wet file is late. ``r`` is computed for all lags
at once with one real FFT per signal, the lag located on the correlation of the signals'
first differences, which has a sharp peak even for bass-heavy material (whole files up to :data:`WHOLE_FILE_SAMPLES`;
longer files use :data:`EXCERPTS` excerpts batched into one FFT, their correlations
summed). The peak is normalised, ``rho = r(lag) / sqrt(sum wet^2 * sum dry^2)``, and a
pair with ``|rho|`` below :data:`MIN_CORRELATION` (0.2) is refused: the wet file is then not
a processed copy of the dry one (wrong file, different take, or mostly noise).

Why 0.2: an unrelated signal correlates at about ``1/sqrt(N)`` (< 0.01 for a second of
audio); the effects fxnet captures stay far above 0.2 - a gain or EQ about 0.5-1.0, a
compressor above 0.9, even hard clipping of Gaussian noise to its sign keeps
``sqrt(2/pi) = 0.8`` (Bussgang). Only strongly decorrelating effects (long reverbs,
pitch shifters, heavy modulation) fall near the threshold; those cannot be aligned
this way anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as spfft

from fxnet.errors import DataError

#: Normalised correlation peak below which a pair is refused (see the module docstring).
MIN_CORRELATION = 0.2
#: Files up to this many samples are correlated whole; longer ones by excerpts.
WHOLE_FILE_SAMPLES = 1 << 21
#: Number and length (samples) of the excerpts correlated for longer files.
EXCERPTS = 8
EXCERPT_SAMPLES = 1 << 17
#: A file whose peak is below this (-80 dBFS) is silent.
SILENCE_PEAK = 1e-4
#: Samples at or above this magnitude count as full scale (16-bit max is 0.99997).
FULL_SCALE = 0.9999
#: A wet file is clipped when this share of its samples (and at least CLIPPED_MIN) is at full scale.
CLIPPED_FRACTION = 1e-3
CLIPPED_MIN = 16
#: Two files differing by at most one 16-bit step everywhere are identical.
IDENTICAL_TOLERANCE = 2.0**-15
#: Length difference tolerated beyond the measured lag, in seconds.
LENGTH_SLACK_SECONDS = 0.001


@dataclass(frozen=True)
class Alignment:
    """The measured latency of a wet file against its dry file."""

    lag_samples: int  #: positive: the wet file is late by this many samples
    correlation: float  #: normalised correlation at the lag, in [-1, 1]


def _mono(x: np.ndarray) -> np.ndarray:
    """(channels, frames) or (frames,) -> float64 (frames,)."""
    x = np.asarray(x, dtype=np.float64)
    return x if x.ndim == 1 else x.mean(axis=0)


def _correlate(wet: np.ndarray, dry: np.ndarray, lags: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """``r(l) = sum_t wet[t] dry[t - (l - shift)]`` for each l in ``lags``, and the same of
    the first differences of both signals; rows of (rows, T) inputs are correlated separately.

    The differenced correlation (both signals through ``1 - z^-1``, a multiplication of the
    cross-spectrum by ``2 - 2 cos w``) has a sharp peak even for bass-heavy material, whose
    plain correlation is broad; it locates the lag, the plain one measures the match.
    """
    size = spfft.next_fast_len(wet.shape[-1] + dry.shape[-1], real=True)
    spec = spfft.rfft(wet, size, axis=-1) * np.conj(spfft.rfft(dry, size, axis=-1))
    tilt = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(spec.shape[-1]) / size)
    index = (lags - shift) % size
    r = spfft.irfft(spec, size, axis=-1)[..., index]
    r_diff = spfft.irfft(spec * tilt, size, axis=-1)[..., index]
    return r, r_diff


def measure_lag(dry: np.ndarray, wet: np.ndarray, *, max_lag: int) -> Alignment:
    """Find the lag (samples) of ``wet`` against ``dry``; arrays (channels, frames) or (frames,).

    Channels are averaged first. Does not judge the result: see :func:`check_alignment`.
    """
    d, w = _mono(dry), _mono(wet)
    max_lag = max(0, int(max_lag))
    lags = np.arange(-max_lag, max_lag + 1)
    n = min(d.size, w.size)
    if max(d.size, w.size) <= WHOLE_FILE_SAMPLES or n < EXCERPT_SAMPLES + 2 * max_lag:
        r, r_diff = _correlate(w, d, lags, 0)
        norm = np.sqrt(np.sum(w * w) * np.sum(d * d))
    else:
        # Excerpts wet[s, s+E) against dry[s-M, s+E+M), batched: r_ex(l) is at shift M.
        e, m = EXCERPT_SAMPLES, max_lag
        starts = np.linspace(m, n - e - m, EXCERPTS).astype(np.int64)
        w_ex = np.stack([w[s : s + e] for s in starts])
        d_ex = np.stack([d[s - m : s + e + m] for s in starts])
        r, r_diff = _correlate(w_ex, d_ex, lags, m)
        r, r_diff = r.sum(axis=0), r_diff.sum(axis=0)
        d_mid = d_ex[:, m : m + e]
        norm = np.sqrt(np.sum(w_ex * w_ex) * np.sum(d_mid * d_mid))
    i = int(np.argmax(np.abs(r_diff)))
    rho = float(r[i] / norm) if norm > 0 else 0.0
    return Alignment(lag_samples=int(lags[i]), correlation=rho)


def check_levels(audio: np.ndarray, *, name: str, role: str, allow_clipping: bool = False) -> None:
    """Refuse a silent file, or a clipped wet file (many samples at full scale)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < SILENCE_PEAK:
        raise DataError(
            f"{role} file is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
            "was the signal chain muted or disconnected?",
            path=name,
        )
    if role == "wet" and not allow_clipping:
        clipped = int(np.count_nonzero(np.abs(audio) >= FULL_SCALE))
        if clipped >= max(CLIPPED_MIN, CLIPPED_FRACTION * audio.size):
            raise DataError(
                f"wet file is clipped ({clipped} samples at full scale); record it again with less "
                "output level, or pass --allow-clipping if the effect itself clips at full scale",
                path=name,
            )


def check_alignment(
    dry: np.ndarray, wet: np.ndarray, alignment: Alignment, *, dry_name: str, wet_name: str,
    sample_rate: int, max_lag: int,
) -> None:
    """Refuse a weakly correlated pair, a lag at the search limit, or a length mismatch."""
    rho = alignment.correlation
    if abs(rho) < MIN_CORRELATION:
        raise DataError(
            f"does not match dry file {dry_name} (correlation peak {abs(rho):.3f} < {MIN_CORRELATION}); "
            "is it a recording of that file through the effect?",
            path=wet_name,
        )
    lag = alignment.lag_samples
    if max_lag > 0 and abs(lag) == max_lag:
        raise DataError(
            f"latency against {dry_name} is at the search limit ({lag} samples); raise --max-lag-ms",
            path=wet_name,
        )
    n_dry, n_wet = dry.shape[-1], wet.shape[-1]
    slack = abs(lag) + max(16, int(LENGTH_SLACK_SECONDS * sample_rate))
    if abs(n_dry - n_wet) > slack:
        raise DataError(
            f"length {n_wet} samples does not match dry file {dry_name} ({n_dry} samples) beyond the "
            f"measured latency of {lag} samples; trim both files to the same take",
            path=wet_name,
        )


def apply_alignment(dry: np.ndarray, wet: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Shift so that ``wet[t]`` belongs to ``dry[t]``, trimmed to a common length (..., frames)."""
    if lag > 0:
        wet = wet[..., lag:]
    elif lag < 0:
        dry = dry[..., -lag:]
    n = min(dry.shape[-1], wet.shape[-1])
    return dry[..., :n], wet[..., :n]


def check_not_identical(dry: np.ndarray, wet: np.ndarray, *, lag: int, dry_name: str, wet_name: str) -> None:
    """Refuse a wet file that equals the (aligned) dry file: the effect was bypassed."""
    if dry.shape == wet.shape and dry.size and float(np.max(np.abs(dry - wet))) <= IDENTICAL_TOLERANCE:
        delay = f" apart from a delay of {lag} samples" if lag else ""
        raise DataError(
            f"is identical to dry file {dry_name}{delay}; was the effect bypassed?", path=wet_name
        )


def align_pair(
    dry: np.ndarray, wet: np.ndarray, *, sample_rate: int, max_lag: int, dry_name: str, wet_name: str,
    allow_clipping: bool = False,
) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """Check a (channels, frames) pair, measure and correct its latency.

    Returns the aligned ``(dry, wet)`` of equal length and the :class:`Alignment`.
    Raises DataError (one line, naming the file) for a silent or clipped file, a weak
    correlation, a length mismatch or an unprocessed copy.
    """
    check_levels(dry, name=dry_name, role="dry")
    check_levels(wet, name=wet_name, role="wet", allow_clipping=allow_clipping)
    if dry.shape == wet.shape:
        check_not_identical(dry, wet, lag=0, dry_name=dry_name, wet_name=wet_name)
    alignment = measure_lag(dry, wet, max_lag=max_lag)
    check_alignment(dry, wet, alignment, dry_name=dry_name, wet_name=wet_name,
                    sample_rate=sample_rate, max_lag=max_lag)
    dry_a, wet_a = apply_alignment(dry, wet, alignment.lag_samples)
    check_not_identical(dry_a, wet_a, lag=alignment.lag_samples, dry_name=dry_name, wet_name=wet_name)
    return dry_a, wet_a, alignment
