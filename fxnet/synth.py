"""Seeded, fast synthetic training material: SignalTrain's signal families and music-like clips.

SignalTrain (Hawley et al. 2019) trained on random synthetic signals: sub-audio sines,
plucked tones with exponential decay, DC "box" steps, white/pink-noise versions,
amplitude-stepped sines and sweeps, peak-normalised to U[0.6, 0.9], with knobs drawn
from Beta(0.8, 0.8). This module makes those, plus music-like material (Karplus-Strong
plucked strings and chords, bass lines, drum kits, formant-filtered "speech") at peak
levels uniform in [-40, 0] dBFS, so that level-dependent effects see quiet material too::

    audio = generate(64, 44100, 44100, seed=0)           # float32 (64, 44100)
    knobs = draw_knobs(64, 4, np.random.default_rng(0))  # float32 (64, 4) in [0, 1]

Each clip has its own random stream spawned from ``seed`` (``SeedSequence(seed).spawn``),
so clip ``i`` is the same whatever ``n_clips`` is. Nothing loops per sample in Python:
recursions are FFT-domain (Karplus-Strong) or scipy filters.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy import fft as spfft
from scipy import signal as sps

from fxnet.errors import UsageError

__all__ = [
    "FAMILIES",
    "MUSIC_FAMILIES",
    "SIGNALTRAIN_FAMILIES",
    "clip_families",
    "draw_knobs",
    "generate",
]

SIGNALTRAIN_FAMILIES: tuple[str, ...] = (
    "subaudio_sine",
    "pluck",
    "box",
    "white_noise",
    "pink_noise",
    "stepped_sine",
    "sweep",
)
MUSIC_FAMILIES: tuple[str, ...] = ("string", "chord", "bass", "drums", "speech")
FAMILIES: tuple[str, ...] = SIGNALTRAIN_FAMILIES + MUSIC_FAMILIES

#: Linear peak range of SignalTrain-family clips.
SIGNALTRAIN_PEAK_RANGE: tuple[float, float] = (0.6, 0.9)
#: Peak level range (dBFS) of music-family clips.
MUSIC_PEAK_DBFS_RANGE: tuple[float, float] = (-40.0, 0.0)
#: Beta(a, a) parameter of SignalTrain's knob draws.
KNOB_BETA = 0.8

#: Draws per clip before a silent clip is accepted (only plausible for clips of a few samples).
_ATTEMPTS = 8

Generator = Callable[[np.random.Generator, int, int], np.ndarray]


# --------------------------------------------------------------------------- helpers
def _loguniform(rng: np.random.Generator, lo: float, hi: float, size: int | None = None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _max_freq(sr: int) -> float:
    return 0.45 * sr


def _segments(rng: np.random.Generator, n: int, sr: int, min_s: float, max_s: float) -> np.ndarray:
    """Start indices (first is 0) of consecutive segments lasting U[min_s, max_s] seconds."""
    count = int(n / (min_s * sr)) + 2
    lengths = np.maximum(1, (rng.uniform(min_s, max_s, count) * sr).astype(np.int64))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return starts[starts < n]


def _expand(starts: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Piecewise-constant signal: values[j] from starts[j] to the next start."""
    return np.repeat(values, np.diff(np.append(starts, n)))


def _since_start(starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: samples since its segment started, and its segment's length."""
    lengths = np.diff(np.append(starts, n))
    seg_start = np.repeat(starts, lengths)
    return np.arange(n) - seg_start, np.repeat(lengths, lengths)


def _midi_hz(m: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pink (1/f power) Gaussian noise, unit RMS, by spectral shaping."""
    m = spfft.next_fast_len(max(n, 2), real=True)
    spec = spfft.rfft(rng.standard_normal(m))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    y = spfft.irfft(spec, n=m)[:n]
    return y / (np.sqrt(np.mean(y * y)) + 1e-12)


def _noise_envelope(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Constant, box-stepped or plucked (decaying) amplitude envelope in [0, 1]."""
    kind = rng.integers(3)
    if kind == 0:
        return np.ones(n)
    if kind == 1:
        starts = _segments(rng, n, sr, 0.02, 0.4)
        levels = rng.uniform(0.0, 1.0, starts.size) * (rng.random(starts.size) > 0.25)
        return _expand(starts, levels, n)
    starts = _segments(rng, n, sr, 0.05, 0.6)
    since, _ = _since_start(starts, n)
    tau = _expand(starts, _loguniform(rng, 0.02, 0.5, starts.size) * sr, n)
    return np.exp(-since / tau)


def _fade_at(y: np.ndarray, stop: int, sr: int) -> np.ndarray:
    """Silence ``y`` from ``stop`` on, with a 5 ms linear fade before it (a damped note)."""
    if stop >= y.size:
        return y
    fade = max(1, int(0.005 * sr))
    a = max(0, stop - fade)
    y[a:stop] *= np.linspace(1.0, 0.0, stop - a, endpoint=False)
    y[stop:] = 0.0
    return y


# ------------------------------------------------------------- SignalTrain families
def _subaudio_sine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f = _loguniform(rng, 0.5, 20.0)
    return np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))


def _pluck(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    for onset in np.sort(rng.integers(0, max(1, int(0.8 * n)), rng.integers(1, 7))):
        f0 = _loguniform(rng, 50.0, min(2000.0, 0.2 * sr))
        tau = _loguniform(rng, 0.03, 1.0)
        seg = min(n - onset, int(7 * tau * sr) + 1)
        t = np.arange(seg) / sr
        wave = np.zeros(seg)
        for k in range(1, int(rng.integers(1, 5)) + 1):
            if k * f0 < _max_freq(sr):
                wave += rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
        y[onset : onset + seg] += rng.uniform(0.3, 1.0) * wave * np.exp(-t / tau)
    return y


def _box(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    starts = _segments(rng, n, sr, 0.01, 0.5)
    levels = rng.uniform(-1.0, 1.0, starts.size) * (rng.random(starts.size) > 0.3)
    return _expand(starts, levels, n)


def _white_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    return rng.standard_normal(n) * _noise_envelope(rng, n, sr)


def _pink_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    return _pink(rng, n) * _noise_envelope(rng, n, sr)


def _stepped_sine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f = _loguniform(rng, 20.0, min(5000.0, _max_freq(sr)))
    starts = _segments(rng, n, sr, 0.02, 0.5)
    amp = 10.0 ** (rng.uniform(-30.0, 0.0, starts.size) / 20.0)
    return _expand(starts, amp, n) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))


def _sweep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f0, f1 = _loguniform(rng, 20.0, _max_freq(sr), 2)
    frac = np.arange(n) / max(1, n - 1)
    freq = f0 * (f1 / f0) ** frac  # exponential sweep, either direction
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return np.sin(phase + rng.uniform(0, 2 * np.pi))


# ------------------------------------------------------------------- music families
def _karplus_strong(
    rng: np.random.Generator, f0: float, n: int, sr: int, *, t60_s: float, brightness: float
) -> np.ndarray:
    """A plucked string of ``n`` samples, computed one string period at a time in the FFT domain.

    Karplus-Strong with a circular delay line of L samples: each period is the previous
    one through the loss filter H = g (1 + z^-1)/2 (circularly), so period p is the noise
    burst times H^p. H^p = (g cos(w/2))^p e^{-i p w / 2} in closed form, so all periods
    come out of one batched inverse FFT. ``brightness`` in (0, 1] low-passes the burst.
    """
    period = max(2, int(round(sr / f0 - 0.5)))
    n_periods = -(-n // period)
    burst = np.fft.rfft(rng.standard_normal(period))
    w = 2 * np.pi * np.arange(burst.size) / period
    pole = 1.0 - brightness
    burst *= (1.0 - pole) / (1.0 - pole * np.exp(-1j * w))
    burst[0] = 0.0
    g = 10.0 ** (-3.0 * period / (sr * t60_s))
    p = np.arange(n_periods, dtype=np.float64)[:, None]
    mag = (g * np.cos(w / 2)) ** p
    spectra = burst * mag * np.exp(-0.5j * p * w)
    y = np.fft.irfft(spectra, n=period, axis=-1).reshape(-1)[:n]
    return y / (np.max(np.abs(y[: min(n, 2 * period)])) + 1e-12)


def _scale_melody(rng: np.random.Generator, count: int, lo: int, hi: int) -> np.ndarray:
    scale = np.array([0, 2, 4, 7, 9] if rng.random() < 0.5 else [0, 3, 5, 7, 10])
    root = int(rng.integers(lo, lo + 12))
    notes = (root + scale[:, None] + 12 * np.arange(4)[None, :]).reshape(-1)
    notes = np.sort(notes[(notes >= lo) & (notes <= hi)])
    idx = int(rng.integers(notes.size))
    out = []
    for _ in range(count):
        out.append(notes[idx])
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, notes.size - 1))
    return np.array(out)


def _string(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    starts = _segments(rng, n, sr, 0.15, 0.8)
    pitches = _scale_melody(rng, starts.size, 40, 84)
    t60 = _loguniform(rng, 0.3, 3.0)
    ring = rng.random() < 0.5  # let notes ring over each other, or damp each at the next
    for j, (onset, m) in enumerate(zip(starts, pitches)):
        f0 = min(float(_midi_hz(m)), 0.25 * sr)
        seg = min(n - onset, int(t60 * sr))
        note = _karplus_strong(rng, f0, seg, sr, t60_s=t60, brightness=rng.uniform(0.3, 1.0))
        if not ring and j + 1 < starts.size:
            note = _fade_at(note, starts[j + 1] - onset, sr)
        y[onset : onset + seg] += rng.uniform(0.3, 1.0) * note
    return y


_CHORDS = ((0, 4, 7, 12), (0, 3, 7, 12), (0, 4, 7, 10), (0, 7, 12, 16), (0, 3, 7, 10))


def _chord(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    starts = _segments(rng, n, sr, 0.4, 1.5)
    t60 = _loguniform(rng, 0.5, 4.0)
    for j, onset in enumerate(starts):
        stop = starts[j + 1] if j + 1 < starts.size else n
        root = int(rng.integers(40, 60))
        shape = _CHORDS[int(rng.integers(len(_CHORDS)))]
        strum = rng.uniform(0.0, 0.03) * sr
        velocity = rng.uniform(0.4, 1.0)
        for s, interval in enumerate(shape):
            on = onset + int(s * strum)
            if on >= stop:
                break
            seg = min(n, stop) - on
            f0 = min(float(_midi_hz(root + interval)), 0.25 * sr)
            note = _karplus_strong(rng, f0, seg, sr, t60_s=t60, brightness=rng.uniform(0.3, 0.9))
            y[on : on + seg] += velocity * rng.uniform(0.6, 1.0) * _fade_at(note, stop - on, sr)
    return y


def _bass(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    starts = _segments(rng, n, sr, 0.1, 0.6)
    freq = _expand(starts, _midi_hz(_scale_melody(rng, starts.size, 28, 55)), n)
    phase = np.cumsum(freq) / sr + rng.uniform()
    kind = rng.integers(3)
    if kind == 0:
        wave = 2.0 * (phase % 1.0) - 1.0  # saw
    elif kind == 1:
        wave = np.where(phase % 1.0 < 0.5, 1.0, -1.0)  # square
    else:
        wave = np.sin(2 * np.pi * phase) + 0.3 * np.sin(4 * np.pi * phase)
    cutoff = min(float(_loguniform(rng, 150.0, 1500.0)), 0.4 * sr)
    wave = sps.sosfilt(sps.butter(2, cutoff, fs=sr, output="sos"), wave)
    since, _ = _since_start(starts, n)
    tau = _expand(starts, _loguniform(rng, 0.08, 1.0, starts.size) * sr, n)
    gate = _expand(starts, rng.uniform(0.5, 1.0, starts.size) * (rng.random(starts.size) > 0.15), n)
    env = (1.0 - np.exp(-since / (0.004 * sr))) * np.exp(-since / tau) * gate
    return wave * env


def _drums(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y = np.zeros(n)
    step = int(60.0 / rng.uniform(70.0, 170.0) / 4.0 * sr)  # sixteenth notes
    nyq = 0.5 * sr
    hat_noise = rng.standard_normal(n)
    snare_noise = rng.standard_normal(n)
    if 0.3 * sr < 0.95 * nyq:
        hat_noise = sps.sosfilt(sps.butter(2, 0.3 * sr, "highpass", fs=sr, output="sos"), hat_noise)
    if 5000.0 < 0.95 * nyq:
        band = sps.butter(2, [1000.0, 5000.0], "bandpass", fs=sr, output="sos")
        snare_noise = sps.sosfilt(band, snare_noise)
    kick_f = (rng.uniform(100.0, 200.0), rng.uniform(40.0, 60.0), rng.uniform(0.01, 0.04))
    kick_tau, snare_tau, hat_tau = rng.uniform(0.1, 0.4), rng.uniform(0.05, 0.2), rng.uniform(0.01, 0.05)
    snare_f = rng.uniform(160.0, 260.0)
    probs = {
        "kick": np.where(np.arange(16) % 4 == 0, 0.8, 0.1),
        "snare": np.where(np.arange(16) % 8 == 4, 0.85, 0.05),
        "hat": np.full(16, rng.uniform(0.3, 0.9)),
    }
    for onset_i, onset in enumerate(range(0, n, max(1, step))):
        for drum, p in probs.items():
            if rng.random() >= p[onset_i % 16]:
                continue
            vel = rng.uniform(0.5, 1.0)
            if drum == "kick":
                seg = min(n - onset, int(5 * kick_tau * sr))
                t = np.arange(seg) / sr
                f = kick_f[1] + (kick_f[0] - kick_f[1]) * np.exp(-t / kick_f[2])
                hit = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / kick_tau)
            elif drum == "snare":
                seg = min(n - onset, int(5 * snare_tau * sr))
                t = np.arange(seg) / sr
                hit = 0.5 * np.sin(2 * np.pi * snare_f * t) * np.exp(-t / 0.04)
                hit += 0.4 * snare_noise[onset : onset + seg] * np.exp(-t / snare_tau)
            else:
                tau = hat_tau * (4.0 if rng.random() < 0.1 else 1.0)
                seg = min(n - onset, int(5 * tau * sr))
                t = np.arange(seg) / sr
                hit = 0.3 * hat_noise[onset : onset + seg] * np.exp(-t / tau)
            y[onset : onset + seg] += vel * hit
    return y


#: (F1, F2, F3) in Hz of a few vowels (Peterson & Barney-like averages).
_VOWELS = (
    (730, 1090, 2440),
    (530, 1840, 2480),
    (270, 2290, 3010),
    (570, 840, 2410),
    (300, 870, 2240),
    (660, 1720, 2410),
)


def _resonator_sos(freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """All-pole two-pole resonator section with unity gain at DC (Klatt cascade style)."""
    r = math.exp(-math.pi * bandwidth / sr)
    c = 2.0 * r * math.cos(2.0 * math.pi * freq / sr)
    return np.array([1.0 - c + r * r, 0.0, 0.0, 1.0, -c, r * r])


def _speech(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    base = _loguniform(rng, 85.0, 255.0)
    f0 = base * (1.0 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t + rng.uniform(0, 2 * np.pi)))
    f0 *= np.exp(-rng.uniform(0.0, 0.2) * t)  # declination
    cycles = np.floor(np.cumsum(f0) / sr + rng.uniform())
    pulses = np.zeros(n)
    pulses[1:][np.diff(cycles) > 0] = 1.0
    tilt = 0.96  # glottal spectral tilt: two real poles, unity DC gain
    source = sps.lfilter([(1.0 - tilt) ** 2], [1.0, -2.0 * tilt, tilt * tilt], pulses)
    source += 0.01 * rng.standard_normal(n)  # aspiration
    starts = _segments(rng, n, sr, 0.08, 0.3)
    vowel_ids = rng.choice(len(_VOWELS), size=min(len(_VOWELS), int(rng.integers(2, 4))), replace=False)
    which = rng.integers(vowel_ids.size, size=starts.size)
    per_sample = _expand(starts, which, n)
    y = np.zeros(n)
    for v, vid in enumerate(vowel_ids):
        mask = per_sample == v
        if not mask.any():
            continue
        sections = [
            _resonator_sos(f * rng.uniform(0.9, 1.1), bw, sr)
            for f, bw in zip(_VOWELS[vid], (80.0, 100.0, 150.0))
            if f * 1.1 < _max_freq(sr)
        ]
        if sections:
            y[mask] = sps.sosfilt(np.stack(sections), source)[mask]
        else:
            y[mask] = source[mask]
    since, length = _since_start(starts, n)
    amp = _expand(starts, rng.uniform(0.3, 1.0, starts.size) * (rng.random(starts.size) > 0.15), n)
    y *= amp * np.sin(np.pi * (since + 0.5) / length)  # each syllable swells and fades to 0
    fricative = _expand(starts, (rng.random(starts.size) < 0.3).astype(np.float64), n)
    if fricative.any():
        hiss = sps.sosfilt(sps.butter(2, 0.2 * sr, "highpass", fs=sr, output="sos"), rng.standard_normal(n))
        y += 0.05 * fricative * hiss * np.exp(-since / (0.03 * sr))
    return y


_GENERATORS: dict[str, Generator] = {
    "subaudio_sine": _subaudio_sine,
    "pluck": _pluck,
    "box": _box,
    "white_noise": _white_noise,
    "pink_noise": _pink_noise,
    "stepped_sine": _stepped_sine,
    "sweep": _sweep,
    "string": _string,
    "chord": _chord,
    "bass": _bass,
    "drums": _drums,
    "speech": _speech,
}
assert tuple(_GENERATORS) == FAMILIES  # internal invariant


# ------------------------------------------------------------------------ public API
def _check_families(families: Sequence[str] | None) -> tuple[str, ...]:
    if families is None:
        return FAMILIES
    if isinstance(families, str):
        families = [families]
    chosen = tuple(families)
    unknown = [f for f in chosen if f not in _GENERATORS]
    if unknown or not chosen:
        what = ", ".join(map(repr, unknown)) or "(none given)"
        plural = "y" if len(unknown) == 1 else "ies"
        raise UsageError(f"unknown synth famil{plural} {what}; choose from: {', '.join(FAMILIES)}")
    return chosen


def _plan(n_clips: int, seed: int, families: Sequence[str] | None) -> list[tuple[str, np.random.Generator]]:
    chosen = _check_families(families)
    if n_clips < 0:
        raise UsageError(f"n_clips must be >= 0, got {n_clips}")
    plan = []
    for child in np.random.SeedSequence(seed).spawn(n_clips):
        rng = np.random.default_rng(child)
        plan.append((chosen[int(rng.integers(len(chosen)))], rng))
    return plan


def clip_families(n_clips: int, *, seed: int, families: Sequence[str] | None = None) -> list[str]:
    """The family of each clip that ``generate`` makes with the same arguments."""
    return [name for name, _ in _plan(n_clips, seed, families)]


def generate(
    n_clips: int,
    length: int,
    sample_rate: int,
    *,
    seed: int,
    families: Sequence[str] | None = None,
) -> np.ndarray:
    """Make ``n_clips`` mono clips of ``length`` samples at ``sample_rate`` Hz.

    Each clip's family is drawn uniformly from ``families`` (default: all of
    :data:`FAMILIES`). SignalTrain-family clips are peak-normalised to U[0.6, 0.9];
    music-family clips to a peak of U[-40, 0] dBFS. Returns float32 (n_clips, length).
    """
    if length < 1:
        raise UsageError(f"length must be >= 1 sample, got {length}")
    if sample_rate < 1:
        raise UsageError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    plan = _plan(n_clips, seed, families)
    out = np.zeros((n_clips, length), dtype=np.float32)
    for i, (name, rng) in enumerate(plan):
        for _ in range(_ATTEMPTS):  # a draw can be silent (all rests, every box at 0)
            y = _GENERATORS[name](rng, length, int(sample_rate))
            if np.any(y != 0.0):
                break
        if name in SIGNALTRAIN_FAMILIES:
            target = rng.uniform(*SIGNALTRAIN_PEAK_RANGE)
        else:
            target = 10.0 ** (rng.uniform(*MUSIC_PEAK_DBFS_RANGE) / 20.0)
        peak = float(np.max(np.abs(y)))
        if peak > 0.0 and math.isfinite(peak):
            out[i] = y * (target / peak)
    return out


def draw_knobs(n: int, k: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``n`` sets of ``k`` normalised knobs from Beta(0.8, 0.8), as SignalTrain drew them.

    Beta(0.8, 0.8) puts a little more weight near the ends of the range than uniform.
    Returns float32 (n, k) in [0, 1].
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return rng.beta(KNOB_BETA, KNOB_BETA, size=(n, k)).astype(np.float32)
