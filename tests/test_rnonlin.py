"""R_nonlin (Tan et al. 2004): properties, and agreement with a direct time-domain computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fxnet.metrics.rnonlin as rn
from fxnet.effects.clipping import clip_to_input_sdr
from fxnet.metrics.rnonlin import band_centres_hz, erb_hz, rnonlin, rnonlin_frames
from fxnet.synth import generate


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """Four 2 s music-like clips at 44.1 kHz, peak-normalised to 0.9."""
    x = generate(4, 2 * 44100, 44100, seed=11, families=["chord", "string", "speech", "drums"]).astype(np.float64)
    return 0.9 * x / np.max(np.abs(x), axis=1, keepdims=True)


def test_identical_and_gain_give_one(music):
    for x in music:
        assert rnonlin(x, x, 44100) == pytest.approx(1.0, abs=1e-6)
        assert rnonlin(0.25 * x, x, 44100) == pytest.approx(1.0, abs=1e-6)
    stereo = music[:2]
    assert rnonlin(stereo, stereo, 44100) == pytest.approx(1.0, abs=1e-6)
    x16 = generate(1, 16000, 16000, seed=3, families=["string"])[0]
    assert rnonlin(x16, x16, 16000) == pytest.approx(1.0, abs=1e-6)


def test_decreases_monotonically_with_harder_clipping(music):
    for x in music:
        values = [rnonlin(clip_to_input_sdr(x, sdr_db), x, 44100) for sdr_db in (30, 20, 10, 5, 3, 1)]
        assert all(a > b for a, b in zip(values, values[1:])), values
        assert values[0] > 0.99 and values[-1] < values[0] - 0.01
    # a gain on the distorted signal changes nothing
    y = clip_to_input_sdr(music[0], 5)
    assert rnonlin(3.0 * y, music[0], 44100) == pytest.approx(rnonlin(y, music[0], 44100), abs=1e-6)


@pytest.mark.parametrize("delay_ms", [1.0, 2.0])
def test_insensitive_to_a_small_delay(music, delay_ms):
    d = int(round(delay_ms * 44.1))
    for x in music:
        delayed = np.concatenate([np.zeros(d), x[:-d]])
        assert rnonlin(delayed, x, 44100) > 0.995
    # beyond the +-10 ms lag range a delay is a real difference
    far = np.concatenate([np.zeros(1764), music[1][:-1764]])  # 40 ms
    assert rnonlin(far, music[1], 44100) < 0.95


def test_range_and_degenerate_inputs():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(22050)
    for test in (rng.standard_normal(22050), np.sign(ref), -ref, np.zeros(22050), ref[::-1].copy()):
        v = rnonlin(test, ref, 22050)
        assert 0.0 <= v <= 1.0
    assert rnonlin(np.zeros(22050), ref, 22050) == 0.0  # nothing of the reference is left
    assert math.isnan(rnonlin(ref, np.zeros(22050), 22050))  # no reference: undefined
    assert rnonlin(ref[:100], ref[:100], 22050) == pytest.approx(1.0, abs=1e-6)  # shorter than one frame
    unrelated = rnonlin(rng.standard_normal(22050), ref, 22050)
    assert unrelated < 0.8


def test_bands_are_one_erb_apart():
    centres = band_centres_hz(44100)
    assert len(centres) == 40 and centres[0] == pytest.approx(50.0)
    e = 21.4 * np.log10(4.37 * centres / 1000 + 1)
    np.testing.assert_allclose(np.diff(e), 1.0, atol=1e-9)
    assert centres[-1] < 0.45 * 44100
    low = band_centres_hz(16000)  # squeezed below 0.45 fs
    assert low[-1] == pytest.approx(7200.0) and np.all(np.diff(low) > 0)
    assert erb_hz(1000.0) == pytest.approx(132.639)


def test_blocks_and_channels_do_not_change_the_result(music, monkeypatch):
    x = np.concatenate([music[0], music[2]])  # 4 s
    y = clip_to_input_sdr(x, 4)
    whole, energy = rnonlin_frames(y, x, 44100)
    monkeypatch.setattr(rn, "_BLOCK_SECONDS", 1.5)
    blocked, _ = rnonlin_frames(y, x, 44100)
    active = energy >= energy.max() * 10 ** (-rn.SILENCE_DB / 10)  # the frames rnonlin averages
    assert 60 < active.sum() < active.size  # the clips hold a few silent (excluded) frames
    np.testing.assert_allclose(blocked[active], whole[active], atol=2e-4)
    two = rnonlin(np.stack([y, x]), np.stack([x, x]), 44100)
    assert two == pytest.approx((rnonlin(y, x, 44100) + 1.0) / 2, abs=1e-6)


def direct_rnonlin(test: np.ndarray, ref: np.ndarray, sr: int) -> float:
    """The definition computed the slow way: real band signals from the untruncated
    gammatone magnitudes, the real normalised cross-correlation evaluated at every lag
    with dot products, the same weights and silence rule."""
    step = 16
    frame = step * round(rn.FRAME_SECONDS * sr / step)
    lag = step * round(rn.MAX_LAG_SECONDS * sr / step)
    pad = lag + sr // 5
    n = len(ref)
    n_fft = n + 2 * pad
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    centres = band_centres_hz(sr)
    x = (f[None] - centres[:, None]) / (1.019 * erb_hz(centres))[:, None]
    response = (1 + x**2) ** -2 * 10 ** (rn.ear_weighting_db(f) / 20)
    response[:, 0] = 0.0

    def bands(s: np.ndarray) -> np.ndarray:
        return np.fft.irfft(np.fft.rfft(np.pad(s, pad), n_fft)[None] * response, n_fft)

    band_r, band_t = bands(ref), bands(test)
    scores, energies = [], []
    for k in range(n // frame):
        t0 = pad + k * frame
        r = band_r[:, t0 : t0 + frame]
        windows = np.lib.stride_tricks.sliding_window_view(band_t[:, t0 - lag : t0 + frame + lag], frame, axis=-1)
        dots = np.einsum("bt,blt->bl", r, windows)  # every lag, no FFT
        e_r = np.sum(r * r, axis=-1)
        e_t = np.sum(windows * windows, axis=-1)
        best = np.clip(np.max(dots / np.sqrt(e_r[:, None] * e_t), axis=-1), 0, 1)
        w = 0.5 * (e_r / e_r.sum() + e_t[:, lag] / e_t[:, lag].sum())
        scores.append(np.sum(w * best))
        energies.append(e_r.sum())
    scores, energies = np.array(scores), np.array(energies)
    return float(np.mean(scores[energies >= energies.max() * 10 ** (-rn.SILENCE_DB / 10)]))


@pytest.mark.parametrize("family", ["chord", "speech"])
def test_agrees_with_the_direct_computation(family):
    sr = 16000
    x = generate(1, sr, sr, seed=5, families=[family])[0].astype(np.float64)
    x /= np.max(np.abs(x))
    for threshold in (0.5, 0.2, 0.05):
        y = np.clip(x, -threshold, threshold)
        fast, slow = rnonlin(y, x, sr), direct_rnonlin(y, x, sr)
        # the envelope of the complex correlation bounds the real one from above, closely
        assert fast == pytest.approx(slow, abs=0.01)
        assert fast >= slow - 1e-3
