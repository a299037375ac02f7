"""Reference effects: golden values computed step by step here, properties, and real sox."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest

from fxnet.effects import EFFECTS, Effect, available, get_effect
from fxnet.effects.clipping import (
    clip_threshold_for_sdr,
    clip_to_input_sdr,
    hardclip,
    input_sdr_db,
    softclip,
    tanh_drive,
)
from fxnet.effects.comp4c import comp4c
from fxnet.effects.la2a import la2a
from fxnet.effects.overdrive import overdrive, sox_overdrive
from fxnet.errors import KnobError, UsageError

X6 = [0.5, 0.9, -0.05, 0.0, 0.7, 0.01]


def _signal(n: int = 4410, seed: int = 0, rows: int | None = None) -> np.ndarray:
    """Decaying tones plus a little noise: a test signal with both loud and quiet parts."""
    rng = np.random.default_rng(seed)
    shape = (n,) if rows is None else (rows, n)
    t = np.arange(n) / 44100.0
    tone = np.sin(2 * np.pi * 220.0 * t) * np.exp(-3.0 * t) * 0.8
    return (tone + 0.05 * rng.standard_normal(shape)).astype(np.float32)


# ----------------------------------------------------------------------- registry
def test_registry_lists_and_loads_every_effect():
    assert available() == sorted(["comp4c", "la2a", "overdrive", "hardclip", "softclip", "tanh",
                                  "clip_sdr", "overdrive_ceg", "distortion"])
    assert set(EFFECTS) == set(available())
    for name in available():
        effect = get_effect(name)
        assert isinstance(effect, Effect) and effect.name == name
        assert effect.knobs and all(0.0 <= d <= 1.0 for d in effect.default_knobs())
        y = effect(_signal(512), 44100, effect.default_knobs())
        assert y.dtype == np.float32 and y.shape == (512,) and np.all(np.isfinite(y))


def test_unknown_effect_lists_the_valid_names():
    with pytest.raises(UsageError, match="unknown effect 'fuzz'; available effects: clip_sdr, comp4c, distortion"):
        get_effect("fuzz")


def test_knob_specs_have_the_documented_physical_ranges():
    comp = get_effect("comp4c")
    assert comp.knob_names == ("threshold", "ratio", "attack", "release")
    assert [(k.minimum, k.maximum, k.unit) for k in comp.knobs] == [
        (-30.0, 0.0, "dB"),
        (1.0, 5.0, ""),
        (0.001, 0.040, "s"),
        (0.001, 0.040, "s"),
    ]
    od = get_effect("overdrive")
    assert od.knob_names == ("gain_db", "colour")
    assert od.knobs[0].to_physical(od.knobs[0].default) == pytest.approx(20.0)  # sox default
    assert od.knobs[1].to_physical(od.knobs[1].default) == pytest.approx(20.0)
    lev = get_effect("la2a")
    assert lev.knob_names == ("limit", "peak_reduction") and lev.knobs[0].steps == 2
    assert lev.knobs[1].to_physical(1.0) == 100.0
    assert get_effect("tanh").knobs[0].maximum == 40.0
    assert get_effect("hardclip").knobs[0].maximum == 50.0


# --------------------------------------------------------------------- call shape
@pytest.mark.parametrize("name", ["comp4c", "la2a", "overdrive", "hardclip", "softclip", "tanh"])
def test_batch_dims_and_per_row_knobs_match_row_by_row(name):
    effect = get_effect(name)
    x = _signal(1000, rows=6).reshape(2, 3, 1000)
    knobs = np.random.default_rng(1).uniform(0.0, 1.0, (2, 3, len(effect.knobs)))
    y = effect(x, 44100, knobs)
    assert y.shape == x.shape and y.dtype == np.float32
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(y[i, j], effect(x[i, j], 44100, knobs[i, j]))
    shared = effect(x, 44100, knobs[0, 0])
    np.testing.assert_array_equal(shared[1, 2], effect(x[1, 2], 44100, knobs[0, 0]))
    for awkward in ((2, 0), (0, 5), (1,), (3, 1)):
        assert effect(np.zeros(awkward, np.float32), 44100, knobs[0, 0]).shape == awkward


def test_bad_knobs_and_audio_are_refused_with_typed_errors():
    x = _signal(100)
    with pytest.raises(KnobError, match=r"comp4c takes 4 normalised knob\(s\) \(threshold, ratio, attack, release\)"):
        comp4c(x, 44100, [0.5, 0.5])
    with pytest.raises(KnobError, match="normalised to \\[0, 1\\]"):
        comp4c(x, 44100, [0.5, 0.5, 0.5, 1.5])
    with pytest.raises(KnobError, match="do not match audio"):
        hardclip(_signal(100, rows=3), 44100, np.zeros((2, 1)))
    with pytest.raises(UsageError, match="sample_rate"):
        hardclip(x, 0, [0.5])
    with pytest.raises(UsageError, match="float array"):
        hardclip(np.zeros(10, dtype=np.int16), 44100, [0.5])


# ------------------------------------------------------------------------- comp4c
def _comp4c_reference(x, sr, threshold, ratio, attack, release):
    """effects.md, literally, one sample at a time in plain Python."""
    alpha_a = math.exp(-math.log(9) / (sr * attack))
    alpha_r = math.exp(-math.log(9) / (sr * release))
    out, g_prev = [], 0.0
    for n, v in enumerate(x):
        xdb = max(20 * math.log10(abs(v) + 1e-8), -96.0)
        gc = threshold + (xdb - threshold) / ratio - xdb if xdb > threshold else 0.0
        if n == 0:
            g = 0.0
        else:
            a = alpha_a if gc < g_prev else alpha_r
            g = (1 - a) * gc + a * g_prev
        out.append(v * 10 ** (g / 20))
        g_prev = g
    return out


def test_comp4c_golden_values():
    # threshold 0.6 -> -12 dB, ratio 0.5 -> 3, attack 0 -> 1 ms, release 1 -> 40 ms
    sr = 1000
    expected = _comp4c_reference(X6, sr, -12.0, 3.0, 0.001, 0.040)
    got = comp4c(np.array(X6, dtype=np.float32), sr, [0.6, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Spot-check the arithmetic by hand: sample 1 (0.9 = -0.915 dB) attacks from g[0] = 0.
    xdb = 20 * math.log10(0.9 + 1e-8)
    gc = -12 + (xdb + 12) / 3 - xdb  # -7.39 dB
    g1 = (1 - 1 / 9) * gc  # alphaA = exp(-ln 9 / 1) = 1/9
    assert got[1] == pytest.approx(0.9 * 10 ** (g1 / 20), abs=1e-6)
    assert got[0] == pytest.approx(0.5)  # g[0] = 0: the first sample is never attenuated


def test_comp4c_golden_values_at_44k1_with_random_knobs():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 64).astype(np.float32)
    k = rng.uniform(0, 1, 4)
    phys = [s.to_physical(v) for s, v in zip(get_effect("comp4c").knobs, k)]
    np.testing.assert_allclose(comp4c(x, 44100, k), _comp4c_reference(x.tolist(), 44100, *phys), atol=1e-6)


def test_comp4c_ratio_one_is_identity():
    x = _signal(4410, rows=3)
    for knobs in ([0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.7, 0.2]):
        np.testing.assert_array_equal(comp4c(x, 44100, knobs), x)


def test_comp4c_threshold_0db_with_signal_below_is_identity():
    x = _signal(4410) * 0.9  # peak < 1 = 0 dBFS
    np.testing.assert_array_equal(comp4c(x, 44100, [1.0, 1.0, 0.3, 0.3]), x)


def test_comp4c_attack_and_release_switch_on_a_step():
    sr, n0, n1 = 1000, 10, 60
    x = np.full(120, 0.01)  # -40 dB: below the -30 dB threshold, gc = 0
    x[n0:n1] = 1.0  # 0 dB: gc = (T - 0)(1 - 1/R) = -30 (1 - 1/5) = -24 dB
    knobs = [0.0, 1.0, 0.0, 1.0]  # T -30 dB, R 5, attack 1 ms, release 40 ms
    y = comp4c(x.astype(np.float32), sr, knobs).astype(np.float64)
    g = 20 * np.log10(y / x)
    alpha_a, alpha_r = math.exp(-math.log(9)), math.exp(-math.log(9) / 40)
    m = np.arange(1, n1 - n0 + 1)
    np.testing.assert_allclose(g[n0:n1], -24 * (1 - alpha_a**m), atol=1e-5)  # attack
    np.testing.assert_allclose(g[:n0], 0.0, atol=1e-5)
    m = np.arange(1, x.size - n1 + 1)
    np.testing.assert_allclose(g[n1:], g[n1 - 1] * alpha_r**m, atol=1e-5)  # release
    # The 10-90 % convention: after sr * tA samples the gain has covered 8/9 of the step.
    assert g[n0] == pytest.approx(-24 * 8 / 9, abs=1e-4)


# ---------------------------------------------------------------------- overdrive
def _overdrive_reference(x, gain_db, colour):
    """sox 14.4.2 overdrive.c flow(), in plain Python."""
    g, c = 10 ** (gain_db / 20), colour / 200
    last_in = last_out = 0.0
    out = []
    for d0 in x:
        d = d0 * g + c
        d = -2 / 3 if d < -1 else 2 / 3 if d > 1 else d - d * d * d / 3
        last_out = d - last_in + 0.995 * last_out
        last_in = d
        out.append(min(1.0, max(-1.0, 0.5 * d0 + 0.75 * last_out)))
    return out


@pytest.mark.parametrize("knobs", [(0.4, 0.2), (0.1, 0.0), (1.0, 1.0), (0.25, 0.6)])
def test_overdrive_golden_values(knobs):
    gain_db, colour = 50.0 * knobs[0], 100.0 * knobs[1]
    expected = _overdrive_reference(X6, gain_db, colour)
    np.testing.assert_allclose(overdrive(np.array(X6, np.float32), 44100, knobs), expected, atol=1e-6)


def test_overdrive_hand_computed_first_samples():
    # G = 20 dB (g = 10), C = 20 (c = 0.1); x = [0.05, -0.02]
    y = overdrive(np.array([0.05, -0.02], np.float32), 44100, [0.4, 0.2])
    d0 = 0.6 - 0.6**3 / 3  # 10 * 0.05 + 0.1 = 0.6 -> 0.528
    d1 = -0.1 + 0.1**3 / 3  # 10 * -0.02 + 0.1 = -0.1 -> -0.0996667
    ydc0 = d0
    ydc1 = d1 - d0 + 0.995 * ydc0
    np.testing.assert_allclose(y, [0.5 * 0.05 + 0.75 * ydc0, 0.5 * -0.02 + 0.75 * ydc1], atol=1e-7)


def test_overdrive_output_is_clipped_to_full_scale():
    # Saturated jumps of 4/3 through the DC blocker push 0.5 x + 0.75 y_dc past ±1.
    x = np.concatenate([np.full(2000, -0.9), np.full(2000, 0.9), [-0.9]]).astype(np.float32)
    y = overdrive(x, 44100, [1.0, 0.0])
    assert y[2000] == 1.0 and y[-1] == -1.0
    assert y[0] == pytest.approx(-0.45 - 0.5)  # y_dc[0] = s[0] = -2/3, not clipped
    np.testing.assert_allclose(y, _overdrive_reference(x.tolist(), 50.0, 0.0), atol=1e-7)


def test_overdrive_zero_gain_is_null_like_sox():
    x = _signal(1000)
    np.testing.assert_array_equal(overdrive(x, 44100, [0.0, 0.7]), x)


def _sox_test_signal() -> np.ndarray:
    """Tone, noise, a loud square (output clipping) and silence, on sox's 2^-31 input grid."""
    rng = np.random.default_rng(7)
    t = np.arange(22050) / 44100.0
    x = 0.6 * np.sin(2 * np.pi * 220 * t) * np.exp(-4 * t) + 0.03 * rng.standard_normal(t.size)
    x[5000:7000] = 0.9 * np.sign(np.sin(2 * np.pi * 50 * t[5000:7000]))
    x[:200] = 0.0
    # sox reads float WAV into 32-bit integers: pre-quantise so both see the same input.
    return (np.round(x * 2.0**31) / 2.0**31).astype(np.float32)


@pytest.mark.skipif(shutil.which("sox") is None, reason="the sox binary is not installed")
@pytest.mark.parametrize("gain_db,colour", [(20, 20), (35, 0), (50, 100), (10, 5), (45, 60), (0, 30), (100, 50)])
def test_overdrive_matches_the_real_sox_binary(tmp_path, gain_db, colour):
    sf = pytest.importorskip("soundfile")
    x = _sox_test_signal()
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, 44100, subtype="FLOAT")
    cmd = ["sox", str(src), "-e", "floating-point", str(dst), "overdrive", str(gain_db), str(colour)]
    subprocess.run(cmd, check=True, capture_output=True)
    ref, sr = sf.read(dst, dtype="float32")
    assert sr == 44100 and ref.shape == x.shape
    ours = sox_overdrive(x, gain_db, colour)
    assert np.max(np.abs(ours - ref)) < 1e-6
    if gain_db <= 50:  # through the knob interface too
        knobs = [gain_db / 50.0, colour / 100.0]
        assert np.max(np.abs(overdrive(x, 44100, knobs) - ref)) < 1e-6
    if gain_db >= 35:
        assert np.max(np.abs(ref)) == 1.0  # the loud square clips at the output


# ------------------------------------------------------------------ clippers
def test_hardclip_golden_values():
    # gain 0.4 -> 20 dB -> x 10
    expected = [max(-1.0, min(1.0, 10 * v)) for v in X6]  # [1, 1, -0.5, 0, 1, 0.1]
    np.testing.assert_allclose(hardclip(np.array(X6, np.float32), 44100, [0.4]), expected, atol=1e-6)
    np.testing.assert_allclose(hardclip(np.array(X6, np.float32), 44100, [0.0]), X6, atol=1e-7)


def test_softclip_golden_values():
    m = [v * 10 ** (6.0 / 20) for v in X6]  # gain 0.12 -> 6 dB
    expected = [v - v**3 / 3 if abs(v) <= 1 else math.copysign(2 / 3, v) for v in m]
    np.testing.assert_allclose(softclip(np.array(X6, np.float32), 44100, [0.12]), expected, atol=1e-6)
    assert softclip(np.array([1.0, -1.0, 3.0], np.float32), 44100, [0.0]).tolist() == pytest.approx(
        [2 / 3, -2 / 3, 2 / 3], abs=1e-7
    )


def test_tanh_golden_values():
    expected = [math.tanh(v * 10 ** (10.0 / 20)) for v in X6]  # drive 0.25 -> 10 dB
    np.testing.assert_allclose(tanh_drive(np.array(X6, np.float32), 44100, [0.25]), expected, atol=1e-6)


# ---------------------------------------------------------- SDR-targeted clipping
TEST_SDRS = [1, 3, 5, 7, 10, 15, 20]


def test_clip_to_input_sdr_hits_every_test_target_within_0_01_db():
    from fxnet.synth import generate

    x = generate(8, 22050, 44100, seed=11)
    for target in TEST_SDRS:
        y = clip_to_input_sdr(x, target)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_allclose(input_sdr_db(x, y), target, atol=0.01)
        theta = clip_threshold_for_sdr(x, target)
        assert np.all(np.abs(y) <= theta[:, None] + 1e-7)


def test_clip_to_input_sdr_per_row_targets_and_batch_dims():
    x = _signal(3000, rows=6).reshape(2, 3, 3000)
    targets = np.array([[1.0, 7.5, 20.0], [3.0, 12.0, 4.2]])
    y = clip_to_input_sdr(x, targets)
    np.testing.assert_allclose(input_sdr_db(x, y), targets, atol=0.01)


def test_clip_threshold_agrees_with_plain_bisection():
    x = _signal(2000, seed=5).astype(np.float64)
    target = 6.0
    lo, hi = 0.0, float(np.max(np.abs(x)))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if input_sdr_db(x, np.clip(x, -mid, mid)) < target:
            lo = mid
        else:
            hi = mid
    assert clip_threshold_for_sdr(x, target) == pytest.approx(0.5 * (lo + hi), rel=1e-9)


def test_clip_to_input_sdr_edge_cases():
    x = np.zeros((2, 100), np.float32)
    x[1] = _signal(100)
    y = clip_to_input_sdr(x, 10.0)
    np.testing.assert_array_equal(y[0], 0.0)  # silence stays silence
    np.testing.assert_array_equal(clip_to_input_sdr(x[1], np.inf), x[1])  # no clipping
    with pytest.raises(UsageError, match="> 0 dB"):
        clip_to_input_sdr(x, 0.0)


# --------------------------------------------------------------------------- la2a
def _la2a_reference(x, sr, limit, peak_reduction):
    """The equations in fxnet/effects/la2a.py's docstring, in plain Python."""
    a = lambda tau: math.exp(-1.0 / (sr * tau))  # noqa: E731
    t = 10.0 - 0.5 * peak_reduction
    s_ratio = 1.0 - 1.0 / (10.0 if limit else 3.0)
    w = 10.0
    env = fast = slow = h = 0.0
    out = []
    for v in x:
        env = abs(v) if abs(v) > env else a(0.010) * env
        o = max(20 * math.log10(env + 1e-8), -96.0) - t
        if 2 * o <= -w:
            target = 0.0
        elif abs(2 * o) < w:
            target = s_ratio * (o + w / 2) ** 2 / (2 * w)
        else:
            target = s_ratio * o
        fast = target + (fast - target) * (a(0.010) if target > fast else a(0.020))
        slow = target + (slow - target) * (a(0.010) if target > slow else a(0.5 + 4.5 * h))
        r = 0.5 * fast + 0.5 * slow
        u = min(target / 10.0, 1.0)
        h = u + (h - u) * (a(2.0) if u > h else a(10.0))
        out.append(v * 10 ** (-r / 20))
    return out


@pytest.mark.parametrize("knobs", [(0.0, 0.8), (1.0, 0.8), (1.0, 0.3), (0.0, 1.0)])
def test_la2a_golden_values(knobs):
    # sr = 200 Hz keeps every coefficient far from 1, so each term of the recursion shows.
    x = [0.5, 0.9, -0.05, 0.0, 0.7, 0.01, 0.3, -0.8]
    expected = _la2a_reference(x, 200, knobs[0], 100 * knobs[1])
    np.testing.assert_allclose(la2a(np.array(x, np.float32), 200, knobs), expected, atol=1e-6)


def test_la2a_golden_values_at_44k1():
    x = _signal(3000, seed=2)
    expected = _la2a_reference(x.tolist(), 44100, 1, 70.0)
    np.testing.assert_allclose(la2a(x, 44100, [1.0, 0.7]), expected, atol=1e-6)


def _gain_reduction_db(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    keep = np.abs(x) > 1e-4
    return 20 * np.log10(np.abs(x[keep]).astype(np.float64) / np.abs(y[keep]))


def test_la2a_gain_reduction_grows_monotonically_with_peak_reduction():
    from fxnet.synth import generate

    x = generate(6, 44100, 44100, seed=4)
    for limit in (0.0, 1.0):
        previous = np.zeros(int(np.sum(np.abs(x) > 1e-4)))
        for pr in np.linspace(0.0, 1.0, 11):
            gr = _gain_reduction_db(x, la2a(x, 44100, [limit, pr]))
            assert np.all(gr >= previous - 1e-4)
            previous = gr
        assert previous.mean() > 3.0  # PR 100 compresses this material noticeably


def test_la2a_peak_reduction_zero_leaves_full_scale_audio_untouched():
    x = _signal(4410, rows=2)
    x /= np.max(np.abs(x))
    np.testing.assert_array_equal(la2a(x, 44100, [1.0, 0.0]), x)


def test_la2a_limit_mode_reduces_more_especially_at_high_levels():
    t = np.arange(44100) / 44100.0
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    steady = slice(22050, None)
    for level_db in (-30.0, -15.0, 0.0):
        x = tone * np.float32(10 ** (level_db / 20))
        comp = _gain_reduction_db(x[steady], la2a(x, 44100, [0.0, 0.8])[steady]).mean()
        lim = _gain_reduction_db(x[steady], la2a(x, 44100, [1.0, 0.8])[steady]).mean()
        assert lim >= comp - 1e-6
        if level_db == 0.0:
            # well above the knee: (1 - 1/10) / (1 - 1/3) = 1.35x the reduction
            assert lim > comp + 5.0 and lim / comp == pytest.approx(1.35, rel=0.02)


def test_la2a_timing_attack_fast_then_slow_release_longer_after_long_compression():
    sr = 44100

    def run(burst_s: float) -> tuple[np.ndarray, np.ndarray]:
        n = int((burst_s + 3.0) * sr)
        t = np.arange(n) / sr
        x = (np.sin(2 * np.pi * 1000 * t) * np.where(t < burst_s, 0.5, 0.0005)).astype(np.float32)
        y = la2a(x, sr, [0.0, 0.8])
        blk = int(0.002 * sr)  # 2 ms blocks: several cycles of the tone
        nb = n // blk
        peak = lambda s: np.abs(s[: nb * blk]).reshape(nb, blk).max(1)  # noqa: E731
        return np.arange(nb) * blk / sr, 20 * np.log10(peak(x) / peak(y))

    def at(tb, gr, when):
        return gr[np.searchsorted(tb, when)]

    tb, gr = run(0.3)
    full = at(tb, gr, 0.29)
    assert full > 10.0
    assert 0.5 * full < at(tb, gr, 0.010) < 0.75 * full  # attack τ ≈ 10 ms
    after_60ms = 1 - at(tb, gr, 0.36) / full
    assert 0.35 < after_60ms < 0.6  # first ~half of the recovery within ~60 ms
    assert 1 - at(tb, gr, 0.30 + 0.5) / full < 0.85  # the rest takes longer than 0.5 s
    tb2, gr2 = run(5.0)
    long_after_1s = 1 - at(tb2, gr2, 6.0) / at(tb2, gr2, 4.99)
    short_after_1s = 1 - at(tb, gr, 1.3) / full
    assert long_after_1s < short_after_1s - 0.1  # slower release after long compression


def test_la2a_makeup_gain_and_determinism():
    x = _signal(4410)
    y = la2a(x, 44100, [0.0, 0.7])
    np.testing.assert_array_equal(y, la2a(x, 44100, [0.0, 0.7]))
    np.testing.assert_allclose(la2a(x, 44100, [0.0, 0.7], makeup_db=6.0), y * 10 ** (6 / 20), rtol=1e-6)
    # The switch snaps: any value >= 0.5 is Limit.
    np.testing.assert_array_equal(la2a(x, 44100, [0.6, 0.7]), la2a(x, 44100, [1.0, 0.7]))
