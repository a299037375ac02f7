"""PEAQ basic version: calibration, golden values from GstPEAQ and Kabal, and properties.

Golden numbers: GstPEAQ (Holters & Zölzer) publishes unit-test values of its FFT ear
model (src/testpeaq.c) and ODGs of two synthetic pairs (src/runtest*.sh); Kabal's report
gives 0.584 sone for a 1 kHz tone at 40 dB SPL. See docs/peaq.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft as spfft
from scipy import signal as sps

from fxnet.errors import UsageError
from fxnet.metrics import peaq as P
from fxnet.metrics.peaq import MOV_NAMES, PeaqResult, odg, peaq
from fxnet.synth import generate

SR = 48000
ODG_RANGE = (-3.9132, 0.2198)  # the network's output range, -3.98 + 4.2 sigmoid(DI)


@pytest.fixture(scope="module")
def tables() -> P._Tables:
    return P._tables(92.0)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return generate(1, 4 * SR, SR, seed=0)[0].astype(np.float64)


def _excitation(frames: np.ndarray, t: P._Tables) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrum, weighted spectrum, unsmeared and smeared excitation of (F, 2048) frames."""
    spec = spfft.rfft(frames * t.window, axis=-1)
    power = np.abs(spec) ** 2
    weighted = power * t.weight2
    unsmeared = P._spread(np.maximum(P._group(weighted, t), 1e-12) + t.internal_noise, t)
    excitation = np.maximum(P._smooth(unsmeared, t.a_smear, 1.0 - t.a_smear), unsmeared)
    return power, weighted, unsmeared, excitation


def _gst_audiotestsrc(wave: str, n: int = 128 * 1024, freq: float = 440.0, volume: float = 0.8) -> np.ndarray:
    """GStreamer audiotestsrc's float waveforms (phase accumulated per sample, wrapped at 2 pi)."""
    step = 2.0 * math.pi * freq / SR
    acc = np.empty(n)
    phase = 0.0
    for i in range(n):  # the wrap-around must follow the source's own rounding
        phase += step
        if phase >= 2.0 * math.pi:
            phase -= 2.0 * math.pi
        acc[i] = phase
    if wave == "sine":
        x = np.sin(acc) * volume
    elif wave == "saw":
        x = np.where(acc < math.pi, acc, acc - 2.0 * math.pi) * volume / math.pi
    else:  # triangle
        x = np.where(acc < math.pi / 2, acc, np.where(acc < 1.5 * math.pi, math.pi - acc, acc - 2.0 * math.pi))
        x = x * volume / (math.pi / 2)
    return x.astype(np.float32).astype(np.float64)


# --- calibration and golden values ---------------------------------------------------


def test_full_scale_sine_reads_92_db_spl(tables: P._Tables) -> None:
    x = np.sin(2 * np.pi * 1019.5 / SR * np.arange(2048))
    power = np.abs(spfft.rfft(x * tables.window)) ** 2
    assert 10 * np.log10(power[43]) == pytest.approx(92.0, abs=1e-4)
    assert np.argmax(power) == 43


def test_band_centres_match_the_standard(tables: P._Tables) -> None:
    # the standard's band table (basic version), also Kabal's PQevalAudio tables, in Hz
    assert tables.fc[[0, 1, 2, 54, 108]] == pytest.approx([91.708, 115.216, 138.870, 2532.456, 17690.045], abs=2e-3)


def test_loudness_of_40_db_tone_is_0_584_sone(tables: P._Tables) -> None:
    # Kabal's report: the standard's constants give 0.584 sone, not the intended 1 sone.
    x = 10 ** ((40 - 92) / 20) * np.sin(2 * np.pi * 1000 / SR * np.arange(51 * 1024 + 1024))
    frames = np.lib.stride_tricks.sliding_window_view(x, 2048)[::1024][:50]
    excitation = _excitation(frames, tables)[3]
    assert P._loudness(excitation[-1], tables) == pytest.approx(0.584, abs=1e-3)


def test_ear_model_matches_gstpeaq_unit_test(tables: P._Tables) -> None:
    # GstPEAQ testpeaq.c: a +-1 step frame, then a ramp frame; values after the ramp.
    step = np.r_[-np.ones(1024), 0.0, np.ones(1023)]
    ramp = (np.arange(2048) - 1024) / 1024
    power, weighted, unsmeared, excitation = _excitation(np.stack([step, ramp]), tables)
    rel = 5e-5  # GstPEAQ's own tolerance
    magnitude = [45.753615, 22360.651865, 4986.494394, 1246.108826, 498.382618, 249.176501]
    assert np.sqrt(power[1, :6]) == pytest.approx(magnitude, rel=rel)
    weighted_magnitude = [141.467357, 272.377031, 152.374914, 93.913964, 61.709413]
    assert np.sqrt(weighted[1, 1:6]) == pytest.approx(weighted_magnitude, rel=rel)
    bands = [0, 1, 10, 30, 60, 108]
    want_unsmeared = [4444.479818, 3458.307890, 80.437553, 1.657093, 1.152737, 1.037901]
    assert unsmeared[1, bands] == pytest.approx(want_unsmeared, rel=rel)
    want_excitation = [1471383.154403, 1784862.319735, 2206250.638417, 577864.997361, 494492.510166, 56.833883]
    assert excitation[1, bands] == pytest.approx(want_excitation, rel=rel)


def test_adaptation_and_modulation_match_gstpeaq_unit_test(tables: P._Tables) -> None:
    ref = np.tile(np.arange(1.0, 110.0), (2, 1))  # two frames of band energies 1..109
    test = np.tile(109.0 - np.arange(109), (2, 1))
    adapted = P._pattern_adaptation(np.stack([ref, test]), tables)
    bands = [0, 1, 47, 107, 108]
    assert adapted[0, 0, bands] == pytest.approx([0.327362, 0.762315, 39.723392, 2.130688, 1.781147], rel=5e-5)
    assert adapted[1, 1, bands] == pytest.approx([1.583720, 2.080140, 41.702910, 1.360696, 0.680369], rel=5e-5)
    mod, average = P._modulation(np.stack([ref, ref]), tables)
    assert mod[0, 0, [0, 1, 108]] == pytest.approx([7.337918, 8.578334, 13.028187], rel=5e-5)
    assert mod[0, 1, [0, 1, 108]] == pytest.approx([3.653446, 3.853811, 0.914025], rel=5e-5)
    assert average[0, 1, [0, 1, 108]] == pytest.approx([0.547559, 0.759658, 4.062336], rel=5e-5)


def test_reproduces_gstpeaq_published_odgs() -> None:
    # GstPEAQ runtest: audiotestsrc 440 Hz, 128 buffers of 1024 samples at 48 kHz.
    sine = _gst_audiotestsrc("sine")
    assert round(odg(sine, sine, SR), 3) == 0.171
    assert round(odg(_gst_audiotestsrc("triangle"), _gst_audiotestsrc("saw"), SR), 3) == -2.007


# --- building blocks against direct formulas ------------------------------------------


def test_spreading_equals_direct_double_sum(tables: P._Tables) -> None:
    """The recursions equal the standard's spreading written as an explicit double sum."""
    rng = np.random.default_rng(0)
    pitch = 10 ** rng.uniform(0, 10, (3, P.N_BANDS))
    dz = 0.25
    i = np.arange(P.N_BANDS)[:, None]  # target band
    l = np.arange(P.N_BANDS)[None, :]  # source band
    want = np.empty_like(pitch)
    for row, e in enumerate(pitch):
        upper = 24.0 + 230.0 / tables.fc - 2.0 * np.log10(e)  # dB/Bark, per source band
        slope_db = np.where(i < l, -27.0 * (l - i) * dz, -upper[None, :] * (i - l) * dz)
        s = 10 ** (slope_db / 10)
        s = s / s.sum(axis=0, keepdims=True)  # unit total gain per source band
        want[row] = np.sum((e[None, :] * s) ** 0.4, axis=1) ** 2.5
    ones = np.ones(P.N_BANDS)
    slope_db1 = np.where(i < l, -27.0 * (l - i) * dz, -(24.0 + 230.0 / tables.fc)[None, :] * (i - l) * dz)
    s1 = 10 ** (slope_db1 / 10)
    norm = np.sum((ones[None, :] * s1 / s1.sum(axis=0, keepdims=True)) ** 0.4, axis=1) ** 2.5
    assert P._spread(pitch, tables) == pytest.approx(want / norm, rel=1e-10)


def test_smoothing_scan_equals_sequential_filter(tables: P._Tables) -> None:
    rng = np.random.default_rng(1)
    x = 10 ** rng.uniform(-3, 9, (2, 700, P.N_BANDS))
    got = P._smooth(x, tables.a_adapt, 1.0 - tables.a_adapt)
    for k in (0, 50, 108):
        want = sps.lfilter([1.0 - tables.a_adapt[k]], [1.0, -tables.a_adapt[k]], x[..., k], axis=-1)
        assert got[..., k] == pytest.approx(want, rel=1e-12)


# --- properties ----------------------------------------------------------------------


def test_identical_signals_score_at_the_top(music: np.ndarray) -> None:
    result = peaq(music, music, SR)
    assert 0.1 < result.odg <= ODG_RANGE[1]
    assert result.rms_noise_loud_b == 0.0 and result.adb_b == 0.0 and result.ehs_b == 0.0


def test_odg_falls_with_added_noise(music: np.ndarray) -> None:
    noise = np.random.default_rng(1).standard_normal(music.size)
    power = np.mean(music**2)
    snrs_db = (80, 70, 60, 50, 30, 20, 10)
    grades = [odg(music + noise * math.sqrt(power / 10 ** (snr / 10)), music, SR) for snr in snrs_db]
    assert all(b <= a + 1e-9 for a, b in zip(grades, grades[1:]))
    assert grades[0] > grades[1] > grades[2] > grades[3] > grades[4]  # strict until PEAQ saturates
    assert grades[-1] < -3.8


def test_odg_falls_with_harder_clipping(music: np.ndarray) -> None:
    peak = np.max(np.abs(music))
    grades = [odg(np.clip(music, -f * peak, f * peak), music, SR) for f in (0.99, 0.9, 0.8, 0.7, 0.5, 0.3)]
    assert all(b <= a + 1e-9 for a, b in zip(grades, grades[1:]))
    assert grades[0] > grades[1] > grades[2] > grades[3] > grades[4]
    assert grades[0] > -1.0 and grades[-1] < -3.5


def test_bandwidth_movs_see_a_lowpass() -> None:
    rng = np.random.default_rng(3)
    ref = 0.1 * rng.standard_normal(3 * SR)
    spec = np.fft.rfft(ref)
    spec[np.fft.rfftfreq(ref.size, 1 / SR) > 10000] = 0  # brickwall at 10 kHz = bin 426.7
    test = np.fft.irfft(spec, ref.size) + 1e-5 * rng.standard_normal(ref.size)
    result = peaq(test, ref, SR)
    assert result.bandwidth_ref_b > 900
    assert 427 <= result.bandwidth_test_b <= 460


def test_range_determinism_and_result_fields(music: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    for scale in (1e-3, 0.05, 0.5):
        test = music + scale * rng.standard_normal(music.size)
        first, second = peaq(test, music, SR), peaq(test, music, SR)
        assert first == second
        assert ODG_RANGE[0] <= first.odg <= ODG_RANGE[1]
        assert first.odg == pytest.approx(P._BMIN + (P._BMAX - P._BMIN) / (1 + math.exp(-first.di)))
    assert list(first.movs) == list(MOV_NAMES)
    assert first.movs["BandwidthRefB"] == first.bandwidth_ref_b
    assert isinstance(first, PeaqResult)


def test_channels_resampling_and_data_boundaries(music: np.ndarray) -> None:
    test = music + 1e-3 * np.random.default_rng(4).standard_normal(music.size)
    mono = odg(test, music, SR)
    assert odg(np.stack([test, test]), np.stack([music, music]), SR) == pytest.approx(mono, abs=1e-12)
    silence = np.zeros(SR)  # leading silence is skipped by the data boundary search
    assert odg(np.r_[silence, test], np.r_[silence, music], SR) == pytest.approx(mono, abs=0.05)
    assert odg(np.r_[test, silence], np.r_[music, silence], SR) == pytest.approx(mono, abs=1e-12)
    sr = 44100
    x44 = generate(1, 2 * sr, sr, seed=0)[0]
    assert 0.1 < odg(x44, x44, sr) <= ODG_RANGE[1]
    assert np.isfinite(peaq(np.zeros(100), np.zeros(100), SR).odg)  # silent, shorter than a frame


@pytest.mark.parametrize(
    ("test", "ref", "rate", "message"),
    [
        (np.zeros(10), np.zeros(11), SR, "shapes differ"),
        (np.zeros((1, 2, 10)), np.zeros((1, 2, 10)), SR, "expected"),
        (np.zeros(0), np.zeros(0), SR, "expected"),
        (np.full(10, np.nan), np.zeros(10), SR, "NaN"),
        (np.zeros(10), np.zeros(10), 0, "sample_rate"),
    ],
)
def test_bad_input_raises_usage_error(test: np.ndarray, ref: np.ndarray, rate: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        peaq(test, ref, rate)
