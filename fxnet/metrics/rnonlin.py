"""R_nonlin: perceived quality of nonlinearly distorted audio (Tan, Moore, Zacharov & Mattila 2004).

C.-T. Tan, B. C. J. Moore, N. Zacharov, V.-V. Mattila, "Predicting the perceived quality
of nonlinearly distorted music and speech signals", J. Audio Eng. Soc. 52(7/8), 2004.
No reference implementation is public; this follows the paper's published description
(as summarised in paper 001, Sec. V-C3), with the choices it leaves open stated here:

1. Outer/middle-ear filter: the outer/middle-ear weighting of ITU-R BS.1387 (PEAQ,
   after Terhardt), ``W(f) = -2.184 (f/kHz)^-0.8 + 6.5 exp(-0.6 (f/kHz - 3.3)^2)
   - 0.001 (f/kHz)^3.6`` dB, applied as a zero-phase filter.
2. 40 fourth-order gammatone filters 1 ERB_N wide (Glasberg & Moore 1990: ERB_N =
   24.7 (4.37 f/kHz + 1) Hz, bandwidth parameter 1.019 ERB_N), centres 1 ERB_N apart
   from 50 Hz up (to ~18 kHz; squeezed below 0.45 fs at low sample rates), applied as
   magnitude responses ``(1 + ((f - fc) / 1.019 ERB_N)^2)^-2`` in the frequency domain,
   tapered to zero between 3.5 and 5 bandwidths from the centre (-45 to -56 dB). The cross-correlation of two
   signals through the same filter depends on its magnitude only, so the zero-phase
   filter gives the causal one's correlations.
3. Non-overlapping frames of ~30 ms (a multiple of 16 samples) of the band signals. Per
   band b and frame f, the normalised cross-correlation ``rho(tau) = sum_t r(t) s(t+tau)
   / sqrt(sum_t r(t)^2 sum_t s(t+tau)^2)`` over lags |tau| <= ~10 ms; ``c_bf = max_tau``
   of it, in [0, 1]. The lag search forgives small frequency-dependent delays, so a
   plain delay of a few ms costs nothing.
4. Band weights: the energy of band b in frame f, as a share of the frame's energy,
   averaged between reference and test, ``w_bf = (E^r_bf / sum_b E^r_bf + E^s_bf /
   sum_b E^s_bf) / 2``. Counting the test's energy too means new distortion products in
   bands where the reference is quiet are weighed, not ignored; both shares are level
   independent, so R_nonlin is blind to a gain on either signal.
5. Frame score ``sum_b w_bf c_bf``; R_nonlin is the mean over frames whose reference
   energy is within 60 dB of the loudest frame (silence carries no information).

How it is computed (fast, no loops over lags or samples): each block of ~6 s is
transformed once; every band's spectrum (ear filter x gammatone) is cut out around its
centre and inverse-transformed as a *complex baseband* (analytic) signal, decimated by
up to 16 where the band is narrow. The maximum over lags of the real correlation of two
band signals is then the maximum of the magnitude of their complex correlation (its
Hilbert envelope): the carrier's phase runs through a full cycle within the ±10 ms lag
range for every band (all centres are >= 50 Hz), so some lag aligns it. Correlations
for all bands, frames and lags come from batched FFTs; the test energy under each lag
from cumulative sums.

The result lies in [0, 1]: 1 for a test signal equal to the reference (up to gain and a
small delay), lower with more distortion. Multichannel input is scored per channel and
averaged. A silent reference gives NaN.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import fft as spfft

from fxnet.errors import UsageError

__all__ = ["band_centres_hz", "ear_weighting_db", "erb_hz", "rnonlin", "rnonlin_frames"]

N_BANDS = 40
LOWEST_CENTRE_HZ = 50.0
FRAME_SECONDS = 0.030
MAX_LAG_SECONDS = 0.010
#: Frames whose reference energy is further than this below the loudest frame are skipped.
SILENCE_DB = 60.0
#: Gammatone bandwidth parameter b (in ERB_N) for a fourth-order filter.
GAMMATONE_B = 1.019
GAMMATONE_ORDER = 4
#: Each band keeps its gammatone response out to this many bandwidths (-56 dB) ...
HALF_WIDTH_BW = 5.0
#: ... tapered to zero over the last ones (from -45 dB at 3.5 bandwidths).
_TAPER_BW = 1.5
#: Largest decimation of the baseband band signals; frame and lag are multiples of it.
_MAX_DECIMATION = 16
#: Context filtered on each side of a block so its band signals equal the whole-file ones.
_MARGIN_SECONDS = 0.1
#: Audio processed per block (bounds memory to a few hundred MB).
_BLOCK_SECONDS = 6.0


def erb_hz(f_hz: np.ndarray | float) -> np.ndarray:
    """Equivalent rectangular bandwidth ERB_N in Hz (Glasberg & Moore 1990)."""
    return 24.7 * (4.37 * np.asarray(f_hz, dtype=np.float64) / 1000.0 + 1.0)


def _erb_number(f_hz: float) -> float:
    return 21.4 * math.log10(4.37 * f_hz / 1000.0 + 1.0)


def _from_erb_number(e: np.ndarray) -> np.ndarray:
    return (10.0 ** (e / 21.4) - 1.0) / 4.37 * 1000.0


def band_centres_hz(sample_rate: int, n_bands: int = N_BANDS) -> np.ndarray:
    """Centre frequencies 1 ERB_N apart from 50 Hz; squeezed to fit below 0.45 fs."""
    lo = _erb_number(LOWEST_CENTRE_HZ)
    hi = min(lo + (n_bands - 1), _erb_number(0.45 * sample_rate))
    return _from_erb_number(np.linspace(lo, hi, n_bands))


def ear_weighting_db(f_hz: np.ndarray) -> np.ndarray:
    """Outer/middle-ear transfer function in dB (ITU-R BS.1387 / Terhardt 1979)."""
    k = np.maximum(np.asarray(f_hz, dtype=np.float64), 1.0) / 1000.0
    return -2.184 * k**-0.8 + 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) - 1e-3 * k**3.6


def band_magnitudes(f_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Ear filter x gammatone magnitude of every band at ``f_hz``: (bands, len(f_hz)).

    Tapered to zero between 3.5 and :data:`HALF_WIDTH_BW` bandwidths from the centre
    (where the gammatone is already 45-56 dB down); zero at DC.
    """
    f = np.asarray(f_hz, dtype=np.float64)
    return _band_gain(np.broadcast_to(f, (N_BANDS, f.size)), band_centres_hz(sample_rate))


def _band_gain(f: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Ear filter x tapered gammatone at frequencies f (bands, n) for the bands' centres (bands,)."""
    x = np.abs(f - centres[:, None]) / (GAMMATONE_B * erb_hz(centres))[:, None]
    gain = (1.0 + x**2) ** (-GAMMATONE_ORDER / 2) * 10.0 ** (ear_weighting_db(np.abs(f)) / 20.0)
    # A raised-cosine taper to zero over the last bandwidths, not a step: a step in the
    # response would give the band's impulse response slowly decaying (1/t) tails.
    ramp = np.clip((x - (HALF_WIDTH_BW - _TAPER_BW)) / _TAPER_BW, 0.0, 1.0)
    return np.where(f > 0, gain * 0.5 * (1.0 + np.cos(np.pi * ramp)), 0.0)


def _plan_bands(sample_rate: int) -> list[tuple[int, tuple[int, ...]]]:
    """Group the bands by decimation factor q, a power of two up to 16.

    Band b's baseband signal spans ``2 * HALF_WIDTH_BW * 1.019 ERB_N(fc)`` Hz, so it needs
    a complex sample rate at least that; q is the largest power of two with ``fs / q``
    still covering it. Returns [(q, band indices)], q descending.
    """
    needed = 2.0 * HALF_WIDTH_BW * GAMMATONE_B * erb_hz(band_centres_hz(sample_rate))
    q = np.clip(2.0 ** np.floor(np.log2(sample_rate / needed)), 1, _MAX_DECIMATION).astype(int)
    return [(int(v), tuple(np.flatnonzero(q == v).tolist())) for v in sorted(set(q.tolist()), reverse=True)]


@lru_cache(maxsize=32)
def _band_gather(n_fft: int, sample_rate: int, q: int, bands: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """rfft bin indices and weights that cut the bands' baseband spectra out of a spectrum.

    Returns (index, weight), each (bands, n_fft // q), in ``ifft`` order (offsets 0, 1,
    ..., -1 from each band's centre bin). Weights are :func:`band_magnitudes` scaled by
    1/sqrt(q), so that band energies summed over decimated samples are comparable.
    """
    m = n_fft // q
    df = sample_rate / n_fft
    centres = band_centres_hz(sample_rate)[list(bands)]
    offsets = np.fft.ifftshift(np.arange(-(m // 2), m - m // 2))
    index = np.rint(centres / df).astype(int)[:, None] + offsets[None, :]
    valid = (index > 0) & (index <= n_fft // 2)
    index = np.clip(index, 0, n_fft // 2)
    weight = _band_gain(index * df, centres)
    return index, (np.where(valid, weight, 0.0) / math.sqrt(q)).astype(np.float32)


def _smooth_size(target: int) -> int:
    """Smallest 2^a 3^b 5^c >= target: fast for pocketfft, also after division by 2^k."""
    best = 1 << max(0, (target - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35 << max(0, (-(-target // p35) - 1).bit_length())
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def _segment(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """x[..., start:stop] with zeros where the range leaves the signal."""
    n = x.shape[-1]
    out = np.zeros(x.shape[:-1] + (stop - start,), dtype=np.float32)
    a, b = max(start, 0), min(stop, n)
    if b > a:
        out[..., a - start : b - start] = x[..., a:b]
    return out


def _correlate_group(spec_r: np.ndarray, spec_t: np.ndarray, index: np.ndarray, weight: np.ndarray, q: int,
                     first: int, nb: int, frame: int, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best normalised correlation and energies for one group of bands.

    ``spec_*``: (rows, bins) rfft of the block's segments; ``first``: offset of the
    block's first frame in the segment. Returns (best, e_ref, e_test), each (rows, bands,
    frames): max over lags of |C(tau)| / sqrt(E_ref E_test(tau)), and the frame energies
    of reference and test (the test's at zero lag).
    """
    u_r = spfft.ifft(spec_r[:, index] * weight, axis=-1, workers=-1)  # (rows, bands, n_fft / q)
    u_t = spfft.ifft(spec_t[:, index] * weight, axis=-1, workers=-1)
    fq, lq, off = frame // q, lag // q, first // q
    window = fq + 2 * lq
    ref_frames = u_r[..., off : off + nb * fq].reshape(u_r.shape[:2] + (nb, fq))
    test_span = u_t[..., off - lq : off + nb * fq + lq]
    test_windows = np.lib.stride_tricks.sliding_window_view(test_span, window, axis=-1)[..., ::fq, :]
    # C[k] = sum_t conj(ref[t]) test[t + k] for k = lag + tau in 0..2 lag: a circular
    # correlation of size >= window has no wrap-around for these k.
    n_corr = spfft.next_fast_len(window)
    corr = spfft.ifft(spfft.fft(test_windows, n_corr, axis=-1, workers=-1)
                      * spfft.fft(ref_frames, n_corr, axis=-1, workers=-1).conj(),
                      axis=-1, workers=-1)[..., : 2 * lq + 1]
    # Energy of the test under the frame at every lag, from one cumulative sum per band.
    power = np.square(test_span.real, dtype=np.float64) + np.square(test_span.imag, dtype=np.float64)
    csum = np.concatenate([np.zeros(power.shape[:-1] + (1,)), np.cumsum(power, axis=-1)], axis=-1)
    starts = (np.arange(nb) * fq)[:, None] + np.arange(2 * lq + 1)[None, :]  # (frames, lags)
    e_test = csum[..., starts + fq] - csum[..., starts]
    e_ref = np.sum(np.square(ref_frames.real, dtype=np.float64) + np.square(ref_frames.imag, dtype=np.float64), axis=-1)
    inv_test = np.where(e_test > 0.0, 1.0 / np.sqrt(np.where(e_test > 0.0, e_test, 1.0)), 0.0).astype(np.float32)
    inv_ref = np.where(e_ref > 0.0, 1.0 / np.sqrt(np.where(e_ref > 0.0, e_ref, 1.0)), 0.0)
    best = np.max(np.abs(corr) * inv_test, axis=-1) * inv_ref
    return np.clip(best, 0.0, 1.0), e_ref, e_test[..., lq]


def _share(energy: np.ndarray) -> np.ndarray:
    """Each band's share of the frame's energy (axis 1 is bands); 0 for a silent frame."""
    total = np.sum(energy, axis=1, keepdims=True)
    return np.where(total > 0.0, energy / np.where(total > 0.0, total, 1.0), 0.0)


def rnonlin_frames(test: np.ndarray, ref: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame scores and reference energies, each (rows, frames) float64.

    ``test`` and ``ref`` are (samples,) or (rows, samples) of the same shape. See the
    module docstring for the steps; :func:`rnonlin` averages the non-silent frames.
    """
    t = np.asarray(test, dtype=np.float32)
    r = np.asarray(ref, dtype=np.float32)
    if t.shape != r.shape:
        raise UsageError(f"rnonlin: test and reference shapes differ: {t.shape} vs {r.shape}")
    if t.ndim == 1:
        t, r = t[None], r[None]
    if t.ndim != 2 or t.shape[-1] == 0:
        raise UsageError(f"rnonlin needs (samples,) or (channels, samples) audio, got shape {t.shape}")
    if sample_rate < 1000:
        raise UsageError(f"rnonlin needs a sample rate of at least 1000 Hz, got {sample_rate}")
    n = t.shape[-1]
    step = _MAX_DECIMATION  # frame, lag and margin are whole numbers of decimated samples
    frame = step * max(1, int(round(FRAME_SECONDS * sample_rate / step)))
    lag = step * max(1, int(round(MAX_LAG_SECONDS * sample_rate / step)))
    margin = step * int(math.ceil(_MARGIN_SECONDS * sample_rate / step))
    n_frames = max(1, n // frame)  # a signal shorter than a frame is one zero-padded frame
    per_block = max(1, int(_BLOCK_SECONDS * sample_rate) // frame)
    n_blocks = -(-n_frames // per_block)
    per_block = -(-n_frames // n_blocks)  # spread the frames evenly over the blocks
    groups = _plan_bands(sample_rate)
    scores, energies = [], []
    for f0 in range(0, n_frames, per_block):
        nb = min(per_block, n_frames - f0)
        start = f0 * frame - lag - margin
        length = nb * frame + 2 * (lag + margin)
        n_fft = step * _smooth_size(-(-length // step))
        spec_r = spfft.rfft(_segment(r, start, start + length), n_fft, axis=-1, workers=-1)
        spec_t = spfft.rfft(_segment(t, start, start + length), n_fft, axis=-1, workers=-1)
        parts = [_correlate_group(spec_r, spec_t, *_band_gather(n_fft, sample_rate, q, bands), q,
                                  lag + margin, nb, frame, lag) for q, bands in groups]
        best, e_ref, e_test = (np.concatenate(a, axis=1) for a in zip(*parts))
        test_sound = np.sum(e_test, axis=1, keepdims=True) > 0.0
        weights = np.where(test_sound, 0.5 * (_share(e_ref) + _share(e_test)), _share(e_ref))
        scores.append(np.sum(weights * best, axis=1))
        energies.append(np.sum(e_ref, axis=1))
    return np.concatenate(scores, axis=-1), np.concatenate(energies, axis=-1)


def rnonlin(test: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
    """R_nonlin in [0, 1] (1 = no audible nonlinear distortion); NaN for a silent reference.

    ``test`` and ``ref``: (samples,) or (channels, samples), same shape, at ``sample_rate``.
    """
    scores, energies = rnonlin_frames(test, ref, sample_rate)
    per_row = []
    for s, e in zip(scores, energies):
        loudest = float(np.max(e))
        if loudest <= 0.0:
            continue
        active = e >= loudest * 10.0 ** (-SILENCE_DB / 10.0)
        per_row.append(float(np.mean(s[active])))
    return float(np.mean(per_row)) if per_row else math.nan
