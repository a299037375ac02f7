"""Golden values of the evaluation metrics, loudness (BS.1770 / EBU Tech 3341) and the registry."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from fxnet.effects.clipping import input_sdr_db
from fxnet.errors import UsageError
from fxnet.metrics import DEFAULT_METRICS, METRICS, Metric, MetricUnavailableError, compute, parse_metric_names
from fxnet.metrics.basic import esr, l1, mrstft, sdr, si_sdr, si_sdr_rows
from fxnet.metrics.loudness import (channel_weights, integrated_loudness, k_weighting_sos, loudness_difference,
                                    lufs_diff)
from fxnet.train.losses import MultiResolutionSTFTLoss, SISDRLoss

S = [3.0, -0.5, 2.0, 7.0]
S_HAT = [2.5, 0.0, 2.0, 8.0]


def torchmetrics_si_sdr(preds: list[float], target: list[float], zero_mean: bool = False) -> float:
    """torchmetrics' scale_invariant_signal_distortion_ratio, written out in plain float64 Python."""
    eps = sys.float_info.epsilon
    if zero_mean:
        mp, mt = sum(preds) / len(preds), sum(target) / len(target)
        preds, target = [p - mp for p in preds], [t - mt for t in target]
    alpha = (sum(p * t for p, t in zip(preds, target)) + eps) / (sum(t * t for t in target) + eps)
    scaled = [alpha * t for t in target]
    noise = [s - p for s, p in zip(scaled, preds)]
    return 10.0 * math.log10((sum(s * s for s in scaled) + eps) / (sum(n * n for n in noise) + eps))


# --- SI-SDR and friends --------------------------------------------------------------------


def test_si_sdr_golden_vector():
    assert si_sdr(S_HAT, S) == pytest.approx(18.4030, abs=5e-5)
    assert si_sdr(S_HAT, S, zero_mean=True) == pytest.approx(15.0918, abs=5e-5)
    assert torchmetrics_si_sdr(S_HAT, S) == pytest.approx(18.4030, abs=5e-5)


@pytest.mark.parametrize("zero_mean", [False, True])
def test_si_sdr_matches_torchmetrics_definition(zero_mean):
    rng = np.random.default_rng(1)
    for n, noise in ((7, 0.5), (1000, 0.01), (1000, 3.0), (4410, 1e-4)):
        ref = rng.standard_normal(n) + 0.3
        est = 0.7 * ref + noise * rng.standard_normal(n)
        want = torchmetrics_si_sdr(est.tolist(), ref.tolist(), zero_mean)
        assert si_sdr(est, ref, zero_mean=zero_mean) == pytest.approx(want, abs=1e-4)
    # per channel, then the mean over channels
    ref = rng.standard_normal((2, 500))
    est = ref + rng.standard_normal((2, 500)) * np.array([[0.1], [0.5]])
    rows = [torchmetrics_si_sdr(e.tolist(), r.tolist()) for e, r in zip(est, ref)]
    np.testing.assert_allclose(si_sdr_rows(est, ref), rows, atol=1e-9)
    assert si_sdr(est, ref) == pytest.approx(np.mean(rows), abs=1e-9)


def test_si_sdr_agrees_with_the_training_loss_and_ignores_gain():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((3, 2000))
    est = ref + 0.2 * rng.standard_normal(ref.shape)
    loss = SISDRLoss()(torch.from_numpy(est)[None], torch.from_numpy(ref)[None]).item()
    assert si_sdr(est, ref) == pytest.approx(-loss, abs=1e-6)
    assert si_sdr(4.0 * est, ref) == pytest.approx(si_sdr(est, ref), abs=1e-9)
    assert si_sdr(ref, ref) > 150.0  # exact copy: limited only by rounding
    assert si_sdr(-ref, ref) > 150.0  # alpha = -1: a polarity flip is a gain too
    delayed = np.roll(ref, 5, axis=-1)
    assert si_sdr(delayed, ref) < 0.0  # white noise delayed by 5 samples is uncorrelated


def test_sdr_is_input_sdr_and_not_scale_invariant():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(4000)
    y = np.clip(x, -1.0, 1.0)
    assert sdr(y, x) == pytest.approx(float(input_sdr_db(x, y)), abs=1e-9)
    # hand-computed: ref [1, 2], est [1, 1] -> 10 log10(5 / 1)
    assert sdr([1.0, 1.0], [1.0, 2.0]) == pytest.approx(10 * math.log10(5.0))
    assert sdr(0.5 * x, x) == pytest.approx(10 * math.log10(1 / 0.25))
    assert sdr(x, x) == math.inf
    assert sdr(np.zeros(4), np.zeros(4)) == math.inf


def test_esr_and_l1_hand_computed():
    assert esr([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(5 / 14)
    # pooled over channels: (1 + 0) / (4 + 1)
    assert esr([[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]]) == pytest.approx(1 / 5)
    assert esr(np.zeros(3), np.zeros(3)) == 0.0
    assert esr(np.ones(3), np.zeros(3)) == math.inf
    assert l1([1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]) == pytest.approx(0.625)


def test_mrstft_definition():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 8192))
    assert mrstft(x, x) == pytest.approx(0.0, abs=1e-12)
    # spectral convergence of 0.5 x is exactly 0.5, log magnitude ln 2 (up to the floor)
    assert mrstft(0.5 * x, x) == pytest.approx(0.5 + math.log(2.0), rel=1e-6)
    # the training loss uses the same definition with another floor: same value on noise
    est = x + 0.3 * rng.standard_normal(x.shape)
    loss = MultiResolutionSTFTLoss()(torch.from_numpy(est)[None].float(), torch.from_numpy(x)[None].float()).item()
    assert mrstft(est, x) == pytest.approx(loss, rel=1e-4)
    # shorter than every FFT size: the largest power of two that fits
    assert mrstft(0.5 * x[:, :300], x[:, :300]) == pytest.approx(0.5 + math.log(2.0), rel=1e-6)
    assert mrstft(0.9 * x, x) < mrstft(0.5 * x, x)


def test_shape_errors():
    with pytest.raises(UsageError, match="shapes differ"):
        si_sdr(np.zeros(3), np.zeros(4))
    with pytest.raises(UsageError, match="at least one sample"):
        esr(np.zeros(0), np.zeros(0))


# --- loudness ---------------------------------------------------------------------------------

#: ITU-R BS.1770-4 Tables 1 and 2: the two K-weighting biquads at 48 kHz.
BS1770_48K = np.array([[1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
                       [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]])


def sine(freq: float, dbfs: float, seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return np.tile(x, (channels, 1))


def test_k_weighting_reproduces_the_standard_table_at_48k():
    np.testing.assert_allclose(k_weighting_sos(48000), BS1770_48K, atol=1e-12)


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000, 96000])
def test_997_hz_sine_at_minus_20_dbfs_reads_minus_23_lufs(sr):
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS
    assert integrated_loudness(sine(997, -20.0, 5.0, sr)[0], sr) == pytest.approx(-23.01, abs=0.1)
    assert integrated_loudness(sine(997, 0.0, 2.0, sr), sr) == pytest.approx(-3.01, abs=0.1)


def _segments(parts: list[tuple[float, float]], sr: int) -> np.ndarray:
    return np.concatenate([sine(1000, db, sec, sr, channels=2) for db, sec in parts], axis=1)


@pytest.mark.parametrize("parts, expected", [
    ([(-23.0, 20.0)], -23.0),                                                   # Tech 3341 case 1
    ([(-33.0, 20.0)], -33.0),                                                   # case 2
    ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),                     # case 3: relative gate
    ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),  # case 4: both gates
    ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),                     # case 5: all blocks pass
])
def test_ebu_tech_3341_stereo_cases(parts, expected):
    assert integrated_loudness(_segments(parts, 48000), 48000) == pytest.approx(expected, abs=0.1)


def test_gating_changes_the_result():
    sr = 48000
    loud, quiet = sine(1000, -23.0, 12.0, sr, 2), sine(1000, -36.0, 2.0, sr, 2)
    gated = integrated_loudness(np.concatenate([quiet, loud, quiet], axis=1), sr)
    assert gated == pytest.approx(-23.0, abs=0.1)  # the quiet parts fall under the relative gate
    ungated = 10 * math.log10((12 * 10 ** -2.3 + 4 * 10 ** -3.6) / 16)  # what it would read without the gate
    assert ungated < -24.0
    # -30 dBFS is within 10 LU of the mean (-25.2): it passes the gate and pulls the result down
    mixed = integrated_loudness(np.concatenate([sine(1000, -30.0, 6, sr, 2), loud[:, : 6 * sr]], axis=1), sr)
    assert mixed == pytest.approx(10 * math.log10((10 ** -3.0 + 10 ** -2.3) / 2), abs=0.1)


def test_channels_silence_and_differences():
    sr = 44100
    mono = sine(440, -20.0, 3.0, sr)
    stereo = np.concatenate([mono, mono])
    assert integrated_loudness(stereo, sr) - integrated_loudness(mono, sr) == pytest.approx(10 * math.log10(2), abs=1e-9)
    assert channel_weights(6).tolist() == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]  # LFE ignored, surrounds +1.5 dB
    assert integrated_loudness(np.zeros(sr), sr) == -math.inf
    assert math.isfinite(integrated_loudness(mono[:, :1000], sr))  # shorter than one 400 ms block
    assert loudness_difference(0.5 * mono, mono, sr) == pytest.approx(20 * math.log10(0.5), abs=1e-9)
    assert lufs_diff(0.5 * mono, mono, sr) == pytest.approx(-20 * math.log10(0.5), abs=1e-9)
    assert lufs_diff(np.zeros((1, sr)), np.zeros((1, sr)), sr) == 0.0


# --- the registry -----------------------------------------------------------------------------


def test_compute_returns_every_named_metric():
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((2, 44100)) * 0.1
    est = ref + 0.01 * rng.standard_normal(ref.shape)
    names = ["si_sdr", "sdr", "esr", "l1", "mrstft", "lufs_diff", "rnonlin"]
    timings: dict[str, float] = {}
    scores = compute(names, est, ref, 44100, timings=timings)
    assert list(scores) == names and set(timings) == set(names)
    assert scores["si_sdr"] == pytest.approx(si_sdr(est, ref))
    assert scores["esr"] == pytest.approx(esr(est, ref))
    assert 0.0 <= scores["rnonlin"] <= 1.0
    assert all(METRICS[n].higher_is_better == (n in {"si_sdr", "sdr", "rnonlin"}) for n in names)
    assert METRICS["si_sdr"].unit == "dB" and METRICS["lufs_diff"].unit == "LU" and METRICS["peaq"].unit == "ODG"
    assert "Le Roux" in METRICS["si_sdr"].citation and "BS.1770" in METRICS["lufs_diff"].citation
    assert "torchmetrics" in METRICS["si_sdr"].doc


def test_registry_errors():
    with pytest.raises(UsageError, match="unknown metric 'sisdr'; known metrics: si_sdr, sdr"):
        compute(["sisdr"], np.zeros(4), np.zeros(4), 44100)
    with pytest.raises(UsageError, match="'fad' is a set metric"):
        compute(["fad"], np.zeros(4), np.zeros(4), 44100)
    with pytest.raises(UsageError, match="shapes differ"):
        compute(["l1"], np.zeros((2, 4)), np.zeros((1, 4)), 44100)
    assert parse_metric_names(None) == list(DEFAULT_METRICS)
    assert parse_metric_names("esr, si_sdr,esr") == ["esr", "si_sdr"]
    assert "fad" not in DEFAULT_METRICS and "peaq" in DEFAULT_METRICS


def test_missing_metric_module_is_a_clear_error():
    ghost = Metric("ghost", "fxnet.metrics._no_such_module", "odg", True, "ODG", "test", "-")
    with pytest.raises(MetricUnavailableError) as e:
        ghost(np.zeros(4), np.zeros(4), 48000)
    assert str(e.value) == "metric 'ghost' is not available: its module fxnet.metrics._no_such_module is not installed"
    assert e.value.exit_code == 1
    wrong = Metric("wrong", "fxnet.metrics.basic", "no_such_function", True, "", "test", "-")
    with pytest.raises(MetricUnavailableError, match="has no function 'no_such_function'"):
        wrong.load()
    assert (METRICS["peaq"].module, METRICS["peaq"].function) == ("fxnet.metrics.peaq", "odg")


def test_peaq_is_reached_through_the_registry():
    pytest.importorskip("fxnet.metrics.peaq")
    sr = 48000
    ref = sine(1000, -20.0, 1.0, sr)[0]
    assert compute(["peaq"], ref, ref, sr)["peaq"] > compute(["peaq"], np.clip(ref, -0.02, 0.02), ref, sr)["peaq"]


def test_importing_the_registry_loads_no_metric_module():
    code = ("import sys, fxnet.metrics; "
            "print(sorted(m for m in sys.modules if m.startswith('fxnet.metrics.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
