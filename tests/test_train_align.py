"""Latency measurement and the checks every dry/wet pair passes before training."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from fxnet.effects import get_effect
from fxnet.errors import DataError
from fxnet.synth import generate
from fxnet.train import align
from fxnet.train.align import align_pair, measure_lag
from fxnet.train.data import PairSpec, load_pairs

SR = 44100


def material(seconds=1.5, seed=0, sr=SR):
    """Broadband test audio peaking at 0.8."""
    x = generate(1, int(seconds * sr), sr, seed=seed, families=["string", "drums", "white_noise"])[0]
    return (0.8 / np.abs(x).max() * x).astype(np.float32)


def delay(y: np.ndarray, lag: int) -> np.ndarray:
    """The wet recording of ``y`` arriving ``lag`` samples late (early if negative), same length."""
    if lag >= 0:
        return np.concatenate([np.zeros(lag, y.dtype), y])[: y.size]
    return np.concatenate([y[-lag:], np.zeros(-lag, y.dtype)])


@pytest.mark.parametrize("lag", [37, -37, 0, 1234])
@pytest.mark.parametrize("effect,knobs", [("hardclip", [0.4]), ("comp4c", [0.1, 0.9, 0.2, 0.5])])
def test_lag_detected_exactly_and_corrected(lag, effect, knobs):
    dry = material(seed=3)
    processed = get_effect(effect)(dry, SR, knobs)
    wet = delay(processed, lag)
    a = measure_lag(dry, wet, max_lag=2205)
    assert a.lag_samples == lag
    assert a.correlation > 0.5
    d, w, a2 = align_pair(dry[None], wet[None], sample_rate=SR, max_lag=2205, dry_name="d.wav", wet_name="w.wav",
                             allow_clipping=True)  # hardclip clips at full scale by design
    assert a2 == a and d.shape == w.shape
    np.testing.assert_array_equal(w[0, :1000], processed[max(0, -lag) : max(0, -lag) + 1000])
    np.testing.assert_array_equal(d[0, :1000], dry[max(0, -lag) : max(0, -lag) + 1000])


def test_long_files_use_batched_excerpts(monkeypatch):
    monkeypatch.setattr(align, "WHOLE_FILE_SAMPLES", 1 << 15)
    monkeypatch.setattr(align, "EXCERPT_SAMPLES", 1 << 13)
    dry = material(seconds=3.0, seed=5)
    wet = delay(get_effect("overdrive")(dry, SR, [0.5, 0.5]) * 0.5, 211)
    a = measure_lag(dry, wet, max_lag=441)
    assert a.lag_samples == 211 and a.correlation > 0.5


def test_inverted_polarity_is_a_strong_negative_correlation():
    dry = material(seed=1)
    a = measure_lag(dry, -0.5 * delay(dry, 12), max_lag=100)
    assert a.lag_samples == 12 and a.correlation < -0.9


# ----------------------------------------------------------------------------- bad pairs
@pytest.fixture
def pair(tmp_path):
    """pair(dry, wet, sr_dry=SR, sr_wet=SR) writes dry/x.wav and wet/x.wav and returns the PairSpec."""

    def _pair(dry, wet, sr_dry=SR, sr_wet=SR, name="x.wav"):
        (tmp_path / "dry").mkdir(exist_ok=True)
        (tmp_path / "wet").mkdir(exist_ok=True)
        sf.write(tmp_path / "dry" / name, np.asarray(dry, np.float32).T, sr_dry, subtype="FLOAT")
        sf.write(tmp_path / "wet" / name, np.asarray(wet, np.float32).T, sr_wet, subtype="FLOAT")
        return PairSpec(tmp_path / "dry" / name, tmp_path / "wet" / name)

    return _pair


def refused(spec, **kw) -> str:
    with pytest.raises(DataError) as e:
        load_pairs([spec], **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_good_pair_reports_lag(pair):
    dry = material(seed=2)
    wet = delay(get_effect("comp4c")(dry, SR, [0.5, 0.5, 0.5, 0.5]), 100)
    (loaded,), sr = load_pairs([pair(dry, wet)])
    assert sr == SR and loaded.report.lag_samples == 100 and loaded.report.correlation > 0.9
    assert loaded.dry.shape == loaded.wet.shape == (1, dry.size - 100)


def test_rate_mismatch(pair):
    x = material()
    msg = refused(pair(x, 0.5 * x, sr_wet=48000))
    assert "wet/x.wav: sample rate 48000 Hz differs from dry file" in msg and "44100 Hz" in msg


def test_channel_mismatch(pair):
    x = material()
    msg = refused(pair(x[None], np.stack([x, x]) * 0.5))
    assert "wet/x.wav: has 2 channel(s) but dry file" in msg and "has 1" in msg


def test_length_mismatch_beyond_lag(pair):
    x = material()
    wet = np.concatenate([0.5 * x, 0.5 * x[: SR // 2]])  # half a second too long, no lag
    msg = refused(pair(x, wet))
    assert "wet/x.wav: length" in msg and "beyond the measured latency of 0 samples" in msg
    # a wet file longer by exactly its latency is fine
    load_pairs([pair(x, np.concatenate([np.zeros(300, np.float32), 0.5 * x]), name="ok.wav")])


def test_silent_wet(pair):
    x = material()
    assert "wet/x.wav: wet file is silent" in refused(pair(x, np.zeros_like(x)))


def test_clipped_wet(pair):
    x = material()
    wet = np.clip(8.0 * x, -1.0, 1.0)
    msg = refused(pair(x, wet))
    assert "wet/x.wav: wet file is clipped" in msg and "--allow-clipping" in msg
    load_pairs([pair(x, wet)], allow_clipping=True)


def test_identical_and_delayed_copy(pair):
    x = material()
    assert "is identical to dry file" in refused(pair(x, x))
    msg = refused(pair(x, delay(x, 25), name="d.wav"))
    assert "wet/d.wav: is identical to dry file" in msg and "apart from a delay of 25 samples" in msg


def test_weak_correlation(pair):
    rng = np.random.default_rng(0)
    dry = 0.3 * rng.standard_normal(SR).astype(np.float32)
    wet = 0.3 * rng.standard_normal(SR).astype(np.float32)  # another take: unrelated
    msg = refused(pair(dry, wet))
    assert "wet/x.wav: does not match dry file" in msg and f"< {align.MIN_CORRELATION}" in msg


def test_lag_at_search_limit(pair):
    x = np.sin(2 * np.pi * 3.0 * np.arange(SR) / SR).astype(np.float32)  # broad correlation peak
    msg = refused(pair(x, delay(0.5 * x, 900)), max_lag_ms=10.0)  # 441 samples searched
    assert "at the search limit" in msg and "--max-lag-ms" in msg


def test_resampled_to_the_requested_rate(pair):
    dry = material(seed=4)
    wet = delay(get_effect("comp4c")(dry, SR, [0.1, 0.9, 0.2, 0.5]), 40)
    (loaded,), sr = load_pairs([pair(dry, wet)], sample_rate=22050)
    assert sr == 22050 and loaded.report.lag_samples == 20  # 40 samples at 44.1 kHz
    assert abs(loaded.dry.shape[-1] - dry.size // 2) <= 25
