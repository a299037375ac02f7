"""Benchmark helpers: the ESR-vs-time plot from a model's validation history, and the sox
compand settings of bench/bench_compand.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fxnet.train.loop import TrainConfig
from fxnet.train.profile import ProfileRequest, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_compand  # noqa: E402
import bench_profile  # noqa: E402
import bench_models  # noqa: E402


def test_plot_curve_draws_the_validation_history(tmp_path):
    cfg = TrainConfig(steps=6, checkpoint_every=2, batch_size=4, segment=512, loss="esr")
    res = profile(ProfileRequest(output=tmp_path / "m.safetensors", synth="comp4c", arch="fir",
                                 arch_config={"taps": 16}, pool_clips=4, val_clips=1, threads=1, config=cfg,
                                 force=True, command="test"))
    png = tmp_path / "out" / "curve.png"
    history = bench_profile.plot_curve(res.path, png, title="test")
    assert [h["step"] for h in history] == [2, 4, 6]
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_plot_curve_refuses_a_model_without_history(tmp_path):
    from fxnet.checkpoint import save_model
    from fxnet.models import get

    path = tmp_path / "old.safetensors"
    save_model(get("gain")(sample_rate=44100), path, training={"steps": 10})
    with pytest.raises(SystemExit, match="no validation history"):
        bench_profile.plot_curve(path, tmp_path / "x.png")


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs the sox binary")
def test_compand_settings_give_the_static_curve(tmp_path):
    # A -6 dBFS sine well above a -20 dB threshold at ratio 4: sox's steady-state output is
    # -20 + 14/4 = -16.5 dB for its peak envelope, a gain of about -10.5 dB.
    sr = 44100
    t = np.arange(2 * sr) / sr
    x = (10 ** (-6 / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "dry.wav", x, sr, subtype="FLOAT")
    y = bench_compand.run_sox(tmp_path / "dry.wav", tmp_path / "wet.wav", (-20.0, 4.0, 2.0))
    gain_db = 20 * np.log10(np.abs(y[-sr // 2:]).max() / np.abs(x[-sr // 2:]).max())
    assert gain_db == pytest.approx(-10.5, abs=0.5)
    # unity below the threshold (-30 dB sine, threshold -20 dB, past the 6 dB soft knee)
    x2 = (x * 10 ** (-24 / 20)).astype(np.float32)
    sf.write(tmp_path / "quiet.wav", x2, sr, subtype="FLOAT")
    y2 = bench_compand.run_sox(tmp_path / "quiet.wav", tmp_path / "wet2.wav", (-20.0, 4.0, 2.0))
    assert np.abs(y2[sr:] - x2[sr:]).max() < 1e-4


def test_compand_grid_and_held_out_settings():
    assert len(bench_compand.HELD_OUT) >= 8
    lo = tuple(min(g) for g in (bench_compand.THRESHOLDS, bench_compand.RATIOS, bench_compand.ATTACKS_MS))
    hi = tuple(max(g) for g in (bench_compand.THRESHOLDS, bench_compand.RATIOS, bench_compand.ATTACKS_MS))
    assert lo in bench_compand.HELD_OUT and hi in bench_compand.HELD_OUT  # the grid's extremes
    for knobs in bench_compand.HELD_OUT:
        assert all(a <= v <= b for a, v, b in zip(lo, knobs, hi))
    # the ranges passed to --knob-range are the grid's
    ranges = [r.split("=")[1].split(":")[:2] for r in bench_compand.KNOB_RANGES]
    assert [tuple(float(v) for v in r) for r in ranges] == list(zip(lo, hi))


def test_bench_scripts_offer_plot_curve():
    root = Path(__file__).resolve().parent.parent / "bench"
    for script in ("bench_profile.py", "bench_compand.py"):
        out = subprocess.run([sys.executable, str(root / script), "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "--plot-curve" in out.stdout


def test_knob_grid_matches_the_default_grid():
    grid = bench_compand.knob_grid(3)
    assert len(grid) == 27
    for i, values in enumerate((bench_compand.THRESHOLDS, bench_compand.RATIOS, bench_compand.ATTACKS_MS)):
        assert sorted({k[i] for k in grid}) == list(values)
    assert len(bench_compand.knob_grid(4)) == 64


def test_registry_training_speed_covers_the_registry(monkeypatch, capsys):
    import fxnet.models

    monkeypatch.setattr(fxnet.models, "available", lambda: ["fir", "gain"])
    rows = bench_models.registry_training_speed([1], repeats=1, steps=2, loss_spec="esr")
    assert [r["arch"] for r in rows] == ["fir", "gain"]
    assert all(r["crop"] == 8192 and r["steps_per_second"] >= r["median_steps_per_second"] > 0 for r in rows)
    assert "fir" in capsys.readouterr().out
