"""Clipping detection: levels, fractions and masks on clipped audio; no false alarms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fxnet.effects.clipping import clip_threshold_for_sdr, clip_to_input_sdr
from fxnet.errors import UsageError
from fxnet.restore import ClipReport, clip_masks, detect_clipping
from fxnet.synth import MUSIC_FAMILIES, generate

SR = 16000


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return generate(10, 3 * SR, SR, seed=11, families=MUSIC_FAMILIES).astype(np.float64)


def _sine(freq: float, seconds: float = 5.0, amp: float = 0.8, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t + 0.3)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767.0) / 32768.0


def test_float_clipping_level_and_fraction(music: np.ndarray) -> None:
    for x in music[:5]:
        y = clip_to_input_sdr(x, 5.0)
        theta = float(np.float32(clip_threshold_for_sdr(x, 5.0)))
        rep = detect_clipping(y)
        assert rep.clipped
        assert rep.threshold == pytest.approx(theta, rel=1e-7)
        expected = np.count_nonzero(np.abs(y) >= theta * (1 - 1e-4))
        assert rep.clipped_samples == expected
        assert rep.clipped_fraction == pytest.approx(expected / y.size)
        assert rep.total_samples == y.size


def test_clipped_below_full_scale_then_normalised(music: np.ndarray) -> None:
    x = music[1]
    theta = 0.4 * np.abs(x).max()
    y = (np.clip(x, -theta, theta) * (0.5 / theta)).astype(np.float32)  # plateau at ±0.5
    rep = detect_clipping(y)
    assert rep.clipped and rep.threshold == pytest.approx(0.5, rel=1e-6)
    _, high, low = clip_masks(y, rep)
    near = theta * (1 - 1e-4)  # samples within the relative tolerance count as clipped
    np.testing.assert_array_equal(high, x >= near)
    np.testing.assert_array_equal(low, x <= -near)


def test_asymmetric_levels(music: np.ndarray) -> None:
    x = music[2] / np.abs(music[2]).max()
    y = np.clip(x, -0.3, 0.6)
    rep = detect_clipping(y)
    assert rep.levels_high == (pytest.approx(0.6),) and rep.levels_low == (pytest.approx(0.3),)
    assert rep.threshold == pytest.approx(0.6)
    reliable, high, low = clip_masks(y, rep)
    np.testing.assert_array_equal(high, x >= 0.6)
    np.testing.assert_array_equal(low, x <= -0.3)
    np.testing.assert_array_equal(reliable, ~(high | low))
    assert rep.clipped_samples == int(high.sum() + low.sum())


def test_one_sided_clipping_reports_inf_for_the_clean_side(music: np.ndarray) -> None:
    x = music[3] / np.abs(music[3]).max()
    rep = detect_clipping(np.minimum(x, 0.5))
    assert rep.clipped and rep.levels_high[0] == pytest.approx(0.5)
    assert np.isinf(rep.levels_low[0])
    assert json.loads(json.dumps(rep.to_dict()))["levels_low"] == [None]


def test_stereo_per_channel(music: np.ndarray) -> None:
    clean = music[4] / np.abs(music[4]).max() * 0.9
    y = np.stack([np.clip(clean, -0.5, 0.5), clean])
    rep = detect_clipping(y)
    assert rep.clipped and rep.total_samples == y.size
    assert rep.levels_high[0] == pytest.approx(0.5) and np.isinf(rep.levels_high[1])
    _, high, low = clip_masks(y, rep)
    assert high.shape == y.shape and not high[1].any() and not low[1].any()
    assert high[0].sum() == np.count_nonzero(clean >= 0.5)


def test_16bit_clipped_file_is_detected(music: np.ndarray) -> None:
    y = _int16(clip_to_input_sdr(music[0] / np.abs(music[0]).max(), 10.0))
    assert detect_clipping(y).clipped


@pytest.mark.parametrize("freq", [50.0, 440.0, 1000.0])
def test_no_false_positive_on_sines(freq: float) -> None:
    x = _sine(freq)
    for signal in (x, _int16(x), x * 0.01, _int16(x * 0.01)):
        rep = detect_clipping(signal)
        assert not rep.clipped
        assert rep.clipped_samples == 0
        assert rep.threshold == pytest.approx(np.abs(signal).max())


def test_no_false_positive_on_noise_and_music(music: np.ndarray) -> None:
    noise = np.random.default_rng(0).standard_normal(5 * SR)
    assert not detect_clipping(noise).clipped
    assert not detect_clipping(_int16(noise / np.abs(noise).max())).clipped
    flagged = [i for i, x in enumerate(music) if detect_clipping(x).clipped]
    assert flagged == []
    assert not detect_clipping(music[:2]).clipped  # as a stereo pair too


def test_the_same_signal_clipped_is_detected() -> None:
    """The sine of the false-positive test, clipped 1 % below its peak, is flagged."""
    x = _sine(440.0)
    rep = detect_clipping(np.clip(x, -0.792, 0.792))
    assert rep.clipped and rep.threshold == pytest.approx(0.792)


def test_silence_and_empty() -> None:
    rep = detect_clipping(np.zeros(1000))
    assert not rep.clipped and rep.threshold == 0.0 and rep.clipped_fraction == 0.0
    assert detect_clipping(np.zeros((2, 0))).total_samples == 0


def test_clip_masks_with_a_number() -> None:
    y = np.array([0.7, 0.2, -0.7, 0.69999, -0.1], dtype=np.float32)
    reliable, high, low = clip_masks(y, 0.7)
    np.testing.assert_array_equal(high, [True, False, False, True, False])
    np.testing.assert_array_equal(low, [False, False, True, False, False])
    np.testing.assert_array_equal(reliable, [False, True, False, False, True])


def test_bad_input() -> None:
    with pytest.raises(UsageError):
        detect_clipping(np.zeros((1, 2, 3)))
    with pytest.raises(UsageError):
        detect_clipping(np.array([0.0, np.nan]))
    with pytest.raises(UsageError):
        detect_clipping(np.zeros(10), tolerance=0.0)
    with pytest.raises(UsageError):
        clip_masks(np.zeros(10), -1.0)
    with pytest.raises(UsageError):
        clip_masks(np.zeros((2, 10)), detect_clipping(np.zeros(10)))
    assert isinstance(detect_clipping(np.zeros(3)), ClipReport)


def test_declip_max_clip_level_caps_the_level_the_network_sees(music: np.ndarray) -> None:
    """With max_clip_level a window whose plateau is above it is scaled down to it before
    the network and the correction scaled back: the same clipped audio at any level above
    the cap gets the same restoration (scaled), reliable samples still pass, and clipped
    ones only move outward."""
    import torch

    from fxnet.models.demucs import Demucs

    torch.manual_seed(0)
    net = Demucs(sample_rate=SR, channels=4, depth=2, lstm_layers=1, context=256, chunk=4096, clip_mask=True,
                 max_clip_level=0.25).eval()
    for p in net.decoder[-1][-1].parameters():  # not the identity: the last layer starts at zero
        torch.nn.init.normal_(p, std=0.05)
    y = clip_to_input_sdr(music[4, :4096], 6.0)
    y = y / np.abs(y).max()  # plateau at 1.0, as in a clipped master
    x = torch.from_numpy(y.astype(np.float32))[None, None]
    with torch.no_grad():
        outs = [net(x * g) / g for g in (0.5, 1.0)]
    np.testing.assert_allclose(outs[0].numpy(), outs[1].numpy(), rtol=1e-4, atol=1e-6)
    y = y[256:-256].astype(np.float32)  # the output drops the context on both sides
    high = y >= y.max() * (1 - 1e-4)
    out = outs[1].numpy()[0, 0]
    assert np.all(out[high] >= y[high]) and np.any(out[high] > y[high] + 1e-4)
    reliable = np.abs(y) < y.max() * 0.999
    np.testing.assert_array_equal(out[reliable], y[reliable])
    net.hparams["max_clip_level"] = 0.0  # without it, the network sees the level
    with torch.no_grad():
        plain = [net(x * g) / g for g in (0.5, 1.0)]
    assert (plain[0] - plain[1]).abs().max() > 1e-4


@pytest.mark.parametrize("signal", ["clipped16", "coarse", "edge"])
def test_float32_audio_is_scanned_as_its_float64_values(signal):
    # The scan reads float32 files without a float64 copy; thresholds stay float64, so
    # the report equals the float64 one exactly (NumPy 2 would round a plain Python
    # float threshold to float32 and move samples across it).
    rng = np.random.default_rng(3)
    if signal == "clipped16":
        x = np.clip(0.5 * rng.standard_normal((2, 200_000)), -0.6, 0.45)
        x = np.round(x / 0.6 * 32767) / 32768 * 0.98  # 16-bit codes, then a gain
    elif signal == "coarse":  # few distinct values: the comparison band reaches below the top quarter
        x = rng.choice([-1.0, -0.3, 0.0, 0.3, 0.7, 1.0], size=(1, 5000))
    else:  # samples at float32(0.9999): below the plateau's edge 1 - 1e-4 in float64, on it in float32
        x = np.concatenate([0.5 * rng.standard_normal(5000).clip(-1.5, 1.5), np.ones(40),
                            np.full(5, np.float32(0.9999))])[None]
    x32 = x.astype(np.float32)
    assert detect_clipping(x32) == detect_clipping(x32.astype(np.float64))
