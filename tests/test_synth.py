"""Synthetic training material: determinism, shapes, levels and what each family sounds like."""

from __future__ import annotations

import numpy as np
import pytest

from fxnet.errors import UsageError
from fxnet.synth import (
    FAMILIES,
    MUSIC_FAMILIES,
    SIGNALTRAIN_FAMILIES,
    clip_families,
    draw_knobs,
    generate,
)

SR = 44100


def _one(family: str, seed: int = 0, length: int = SR, sr: int = SR) -> np.ndarray:
    return generate(1, length, sr, seed=seed, families=[family])[0].astype(np.float64)


def _spectrum(x: np.ndarray, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    power = np.abs(np.fft.rfft(x)) ** 2
    return np.fft.rfftfreq(x.size, 1.0 / sr), power


def test_family_lists():
    assert set(SIGNALTRAIN_FAMILIES) == {
        "subaudio_sine", "pluck", "box", "white_noise", "pink_noise", "stepped_sine", "sweep",
    }
    assert set(MUSIC_FAMILIES) == {"string", "chord", "bass", "drums", "speech"}
    assert FAMILIES == SIGNALTRAIN_FAMILIES + MUSIC_FAMILIES


def test_same_seed_same_audio_and_other_seed_other_audio():
    a = generate(12, 4000, SR, seed=3)
    np.testing.assert_array_equal(a, generate(12, 4000, SR, seed=3))
    assert not np.array_equal(a, generate(12, 4000, SR, seed=4))
    # Each clip has its own stream: the first clips do not depend on how many are made.
    np.testing.assert_array_equal(a[:5], generate(5, 4000, SR, seed=3))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("length,sr", [(1, SR), (37, SR), (3000, 8000), (24000, 48000), (SR, SR)])
def test_shape_dtype_and_finite_for_every_family(family, length, sr):
    a = generate(3, length, sr, seed=1, families=[family])
    assert a.shape == (3, length) and a.dtype == np.float32
    assert np.all(np.isfinite(a))


def test_peak_levels_are_in_the_documented_ranges():
    for family in FAMILIES:
        a = generate(24, 22050, SR, seed=2, families=[family])
        peaks = np.max(np.abs(a), axis=1)
        if family in SIGNALTRAIN_FAMILIES:
            assert np.all((peaks >= 0.6 - 1e-6) & (peaks <= 0.9 + 1e-6)), family
        else:
            assert np.all((peaks >= 0.01 - 1e-6) & (peaks <= 1.0 + 1e-6)), family
            assert peaks.max() / peaks.min() > 3.0, family  # levels really do vary


def test_music_levels_span_minus_40_to_0_dbfs():
    a = generate(400, 64, SR, seed=9, families=list(MUSIC_FAMILIES))
    peak_db = 20 * np.log10(np.max(np.abs(a), axis=1))
    assert -40.001 <= peak_db.min() < -35 and -5 < peak_db.max() <= 0.001


def test_families_are_drawn_as_planned_and_unknown_ones_refused():
    names = clip_families(200, seed=0)
    assert set(names) == set(FAMILIES)
    assert set(clip_families(20, seed=0, families=["box", "drums"])) == {"box", "drums"}
    with pytest.raises(UsageError, match="unknown synth family 'kazoo'; choose from: subaudio_sine"):
        generate(1, 100, SR, seed=0, families=["kazoo"])


def test_subaudio_sine_is_below_20_hz_and_box_is_piecewise_constant():
    f, p = _spectrum(_one("subaudio_sine"))
    assert p[f <= 25].sum() > 0.99 * p.sum()
    box = _one("box")
    assert np.count_nonzero(np.diff(box)) < 150  # steps, not a waveform


def test_white_noise_is_flat_and_pink_noise_tilts_down():
    def high_low_ratio(x):
        f, p = _spectrum(x)
        return p[(f > 8000) & (f < 16000)].mean() / p[(f > 100) & (f < 1000)].mean()

    white = [high_low_ratio(_one("white_noise", s)) for s in range(4)]
    pink = [high_low_ratio(_one("pink_noise", s)) for s in range(4)]
    assert all(0.3 < r < 3.0 for r in white)
    assert all(r < 0.1 for r in pink)  # 1/f: ~ -13 dB from 100-1000 Hz to 8-16 kHz


def test_sweep_changes_frequency_and_stepped_sine_changes_level():
    def dominant_hz(x):
        f, p = _spectrum(x * np.hanning(x.size))
        return f[np.argmax(p)]

    sweep = _one("sweep", seed=1)
    start, end = dominant_hz(sweep[:4410]), dominant_hz(sweep[-4410:])
    assert max(start, end) / min(start, end) > 1.5
    stepped = _one("stepped_sine", seed=1)
    blocks = np.abs(stepped[: SR // 441 * 441].reshape(-1, 441)).max(1)
    assert blocks.max() / blocks.min() > 1.5


def test_strings_are_pitched_and_drums_are_transient():
    x = _one("string", seed=2)[: SR // 4]
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * x.size)) ** 2)[: x.size]  # autocorrelation
    lag = slice(int(SR / 1000), int(SR / 60))  # a period between 60 Hz and 1 kHz
    assert ac[lag].max() > 0.5 * ac[0]

    def level_spread(x):  # 95th / 10th percentile of the 5 ms block RMS
        rms = np.sqrt(np.mean(x[: x.size // 220 * 220].reshape(-1, 220) ** 2, axis=1))
        return np.percentile(rms, 95) / np.percentile(rms, 10)

    assert all(level_spread(_one("drums", seed=s)) > 2.5 for s in range(6))  # hits decay
    assert all(level_spread(_one("sweep", seed=s)) < 1.5 for s in range(6))  # steady


def test_families_have_distinct_signatures():
    """Mean (zero-crossing rate, spectral centroid, crest factor) differs between families."""

    def features(x):
        f, p = _spectrum(x)
        zcr = np.mean(np.abs(np.diff(np.signbit(x).astype(np.int8))))
        centroid = (f * p).sum() / (p.sum() + 1e-30)
        crest = np.max(np.abs(x)) / (np.sqrt(np.mean(x**2)) + 1e-30)
        return np.array([np.log10(zcr + 1e-5), np.log10(centroid + 1.0), np.log10(crest)])

    signatures = {}
    for family in FAMILIES:
        clips = generate(6, 22050, SR, seed=5, families=[family]).astype(np.float64)
        signatures[family] = np.mean([features(c) for c in clips], axis=0)
        assert not np.array_equal(clips[0], clips[1])
    names = list(FAMILIES)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(signatures[a] - signatures[b]).max() > 0.02, (a, b)


def test_draw_knobs_is_beta_0_8():
    k = draw_knobs(20000, 3, np.random.default_rng(0))
    assert k.shape == (20000, 3) and k.dtype == np.float32
    assert k.min() >= 0.0 and k.max() <= 1.0
    np.testing.assert_array_equal(k, draw_knobs(20000, 3, np.random.default_rng(0)))
    np.testing.assert_array_equal(draw_knobs(5, 3, 0), draw_knobs(5, 3, np.random.default_rng(0)))
    assert k.mean() == pytest.approx(0.5, abs=0.01)
    # Var of Beta(a, a) = 1 / (4 (2a + 1)) = 0.0962 for a = 0.8 (uniform: 0.0833)
    assert k.var() == pytest.approx(1 / (4 * 2.6), abs=0.003)
