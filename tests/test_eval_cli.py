"""`fxnet eval` end to end: pairing, tables, JSON, CSV, plots, bad inputs and exit codes."""

from __future__ import annotations

import csv
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clihelp import run  # tests/ is on sys.path (pytest rootdir-relative import)
from fxnet.metrics import METRICS, Metric
from fxnet.metrics.basic import esr, si_sdr
from fxnet.metrics.plots import boxplot, confidence_interval, sweep_plot

SR = 22050
FAST = "si_sdr,esr,l1,mrstft,lufs_diff,rnonlin"



def clip(seed: int, seconds: float = 0.8, sr: int = SR, channels: int = 1) -> np.ndarray:
    """(samples, channels) of a few harmonics with a slow tremolo, peak ~0.6."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(110, 440)
    x = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 6))
    x = x * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    x = 0.6 * x / np.max(np.abs(x))
    return np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)


@pytest.fixture
def folders(tmp_path):
    """ref/{a,b,c}.wav, est/{a,b}.wav (clipped), est/c.wav (corrupt), est/extra.wav (no reference)."""
    ref, est = tmp_path / "ref", tmp_path / "est"
    ref.mkdir()
    est.mkdir()
    for i, name in enumerate("abc"):
        x = clip(i)
        sf.write(ref / f"{name}.wav", x, SR, subtype="FLOAT")
        if name != "c":
            sf.write(est / f"{name}.wav", np.clip(x, -0.25 - 0.1 * i, 0.25 + 0.1 * i), SR, subtype="FLOAT")
    (est / "c.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(est / "extra.wav", clip(9), SR)
    return est, ref


def test_folders_table_unpaired_and_bad_file(folders, capsys):
    est, ref = folders
    code, out, err = run(["eval", est, ref, "--metrics", FAST], capsys)
    assert code == 2  # one pair failed; the others were scored
    assert "Scores per file" in out and "Summary" in out
    for name in ("a", "b", "si_sdr [dB] ↑", "esr ↓", "rnonlin ↑", "median", "Q1", "Q3", "mean"):
        assert name in out
    assert f"unpaired {est / 'extra.wav'}: no reference of that name in {ref}" in err
    bad = [line for line in err.splitlines() if line.startswith("failed")]
    assert len(bad) == 1 and str(est / "c.wav") in bad[0] and "cannot decode audio" in bad[0]
    assert "1 problem(s):" in err


def test_json_values_match_the_library(folders, capsys):
    est, ref = folders
    code, out, err = run(["eval", est, ref, "--metrics", FAST, "--json"], capsys)
    assert code == 2
    doc = json.loads(out)  # stdout holds exactly one JSON document
    assert doc["command"] == "eval" and doc["pairs"] == 3 and doc["failed"] == 1
    assert [m["name"] for m in doc["metrics"]] == FAST.split(",")
    assert doc["metrics"][0] == {**doc["metrics"][0], "unit": "dB", "higher_is_better": True}
    (method,) = doc["methods"]
    assert method["unpaired"] == {"estimates": [str(est / "extra.wav")], "references": []}
    files = {f["name"]: f for f in method["files"]}
    assert files["c"]["errors"] and files["c"]["scores"] == {}
    for name in "ab":
        e, _ = sf.read(est / f"{name}.wav", always_2d=True)
        r, _ = sf.read(ref / f"{name}.wav", always_2d=True)
        assert files[name]["scores"]["si_sdr"] == pytest.approx(si_sdr(e.T, r.T), abs=1e-6)
        assert files[name]["scores"]["esr"] == pytest.approx(esr(e.T, r.T), rel=1e-6)
        assert 0.0 < files[name]["scores"]["rnonlin"] < 1.0
    values = [files[n]["scores"]["si_sdr"] for n in "ab"]
    summary = method["summary"]["si_sdr"]
    assert summary["n"] == 2
    assert summary["median"] == pytest.approx(np.median(values)) and summary["mean"] == pytest.approx(np.mean(values))
    assert summary["q1"] == pytest.approx(np.quantile(values, 0.25))
    assert set(doc["timings_seconds"]) >= {"load", *FAST.split(",")}


def test_two_files_default_metrics_and_subprocess(tmp_path):
    x = clip(3, seconds=1.0)
    sf.write(tmp_path / "ref.wav", x, SR)
    sf.write(tmp_path / "out.wav", np.clip(x, -0.3, 0.3), SR)
    proc = subprocess.run([sys.executable, "-m", "fxnet", "eval", str(tmp_path / "out.wav"), str(tmp_path / "ref.wav"),
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    scores = doc["methods"][0]["files"][0]["scores"]
    assert list(scores) == ["si_sdr", "sdr", "esr", "l1", "mrstft", "lufs_diff", "rnonlin", "peaq"]
    assert -4.5 < scores["peaq"] < 0.3
    assert doc["methods"][0]["name"] == "out"


def test_resampling_length_and_channel_handling(tmp_path, capsys):
    x = clip(4, seconds=1.0, sr=44100, channels=2)
    import soxr

    sf.write(tmp_path / "ref.wav", x, 44100, subtype="FLOAT")
    sf.write(tmp_path / "est48.wav", soxr.resample(x, 44100, 48000), 48000, subtype="FLOAT")
    code, out, err = run(["eval", tmp_path / "est48.wav", tmp_path / "ref.wav", "-m", "si_sdr", "--json"], capsys)
    assert code == 0
    scores = json.loads(out)["methods"][0]["files"][0]
    assert "resampled estimate 48000 Hz to 44100 Hz" in err and scores["sample_rate"] == 44100
    assert scores["scores"]["si_sdr"] > 30.0  # the round trip through soxr is nearly transparent
    # 2 ms longer: trimmed silently; 50 ms longer: trimmed with a warning
    sf.write(tmp_path / "short.wav", x[:-88], 44100, subtype="FLOAT")
    code, out, err = run(["eval", tmp_path / "short.wav", tmp_path / "ref.wav", "-m", "si_sdr"], capsys)
    assert code == 0 and "lengths differ" not in err
    sf.write(tmp_path / "shorter.wav", x[:-2205], 44100, subtype="FLOAT")
    code, out, err = run(["eval", tmp_path / "shorter.wav", tmp_path / "ref.wav", "-m", "si_sdr"], capsys)
    assert code == 0 and "lengths differ by 50.0 ms (estimate 0.950 s, reference 1.000 s)" in err
    # mono against stereo: scored in mono; 2 against 3 channels: that pair fails
    sf.write(tmp_path / "mono.wav", x.mean(axis=1), 44100, subtype="FLOAT")
    code, out, err = run(["eval", tmp_path / "mono.wav", tmp_path / "ref.wav", "-m", "si_sdr", "--json"], capsys)
    assert code == 0 and "scored in mono" in err
    assert json.loads(out)["methods"][0]["files"][0]["scores"]["si_sdr"] > 60
    sf.write(tmp_path / "three.wav", np.tile(x[:, :1], 3), 44100)
    code, out, err = run(["eval", tmp_path / "three.wav", tmp_path / "ref.wav", "-m", "si_sdr"], capsys)
    assert code == 2 and f"{tmp_path / 'three.wav'}: has 3 channels but its reference" in err


def test_csv_and_plot_files(folders, tmp_path, capsys):
    est, ref = folders
    png, table = tmp_path / "box.png", tmp_path / "scores.csv"
    code, out, err = run(["eval", est, ref, "-m", "si_sdr,esr,rnonlin", "--csv", table, "--plot", png, "-q"], capsys)
    assert code == 2
    assert "Scores per file" not in out and "Summary" in out  # --quiet keeps only the summary
    rows = list(csv.DictReader(table.open()))
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert list(rows[0])[:7] == ["method", "name", "est", "ref", "si_sdr", "esr", "rnonlin"]
    assert float(rows[0]["si_sdr"]) > 0 and rows[2]["si_sdr"] == "" and "cannot decode" in rows[2]["errors"]
    check_png(png)
    assert not list(tmp_path.glob(".*fxnet-partial"))


def check_png(path: Path, min_bytes: int = 5000) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width > 300 and height > 200
    from matplotlib import image

    pixels = image.imread(str(path))
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20  # boxes, text, not a blank canvas


def test_methods_side_by_side_and_fad(folders, tmp_path, capsys):
    est, ref = folders
    other = tmp_path / "other"
    other.mkdir()
    for name in "abc":
        x, _ = sf.read(ref / f"{name}.wav")
        sf.write(other / f"{name}.fx.wav", x + 0.01 * np.random.default_rng(1).standard_normal(len(x)), SR)
    png = tmp_path / "methods.png"
    code, out, err = run(["eval", ref, "--method", f"clipped={est}", "--method", f"noisy={other}", "--suffix", ".fx",
                          "-m", "si_sdr,fad", "--plot", png, "--json"], capsys)
    doc = json.loads(out)
    assert code == 2  # est/c.wav is corrupt
    clipped, noisy = doc["methods"]
    assert (clipped["name"], noisy["name"]) == ("clipped", "noisy")
    assert len(noisy["files"]) == 3 and not noisy["unpaired"]["estimates"]  # song.fx.wav pairs with song.wav
    assert noisy["set_metrics"]["fad"] >= 0.0 and clipped["set_metrics"]["fad"] > 0.0
    assert noisy["summary"]["si_sdr"]["median"] > clipped["summary"]["si_sdr"]["median"]
    check_png(png)
    code, out, err = run(["eval", other, ref, "--suffix", ".fx", "-m", "fad"], capsys)
    assert code == 0 and "fad ↓ = " in out and "over 3 file pair(s) (embedding: logmel)" in out


def test_usage_errors_are_one_line(folders, tmp_path, capsys):
    est, ref = folders
    cases = [
        (["eval", est, ref, "-m", "sisdr"], "unknown metric 'sisdr'; known metrics: si_sdr, sdr, esr"),
        (["eval", est / "a.wav", ref], "give two files or two folders, not one of each"),
        (["eval", tmp_path / "nope", ref], f"{tmp_path / 'nope'}: no such file or directory (estimate)"),
        (["eval", ref], "only one path given: use EST REF, or REF with --method NAME=DIR"),
        (["eval", ref, "--method", "x"], "--method 'x': expected NAME=DIR"),
        (["eval", est, ref, "--csv", ref / "a.wav"], "refusing to write a report over an audio file or an input"),
    ]
    for argv, message in cases:
        code, out, err = run(argv, capsys)
        assert code == 1, (argv, err)
        assert err.count("\n") == 1 and message in err and err.startswith("fxnet: error: ")
    empty = tmp_path / "empty"
    empty.mkdir()
    sf.write(empty / "zzz.wav", clip(1), SR)
    code, _, err = run(["eval", empty, ref], capsys)
    assert code == 1 and "no audio file names in common" in err


def test_missing_peaq_module(folders, capsys, monkeypatch):
    est, ref = folders
    ghost = Metric("peaq", "fxnet.metrics._peaq_not_here", "odg", True, "ODG", "PEAQ", "-")
    monkeypatch.setitem(METRICS, "peaq", ghost)
    code, out, err = run(["eval", est / "a.wav", ref / "a.wav", "-m", "si_sdr,peaq"], capsys)
    assert code == 1
    assert err == ("fxnet: error: metric 'peaq' is not available: its module fxnet.metrics._peaq_not_here "
                   "is not installed\n")
    # asked for by default only: left out with a warning, the rest is scored
    code, out, err = run(["eval", est / "a.wav", ref / "a.wav", "--json"], capsys)
    assert code == 0 and "left out" in err
    assert "peaq" not in json.loads(out)["methods"][0]["files"][0]["scores"]


def test_plot_helpers(tmp_path):
    rng = np.random.default_rng(0)
    results = {m: {"si_sdr": list(rng.normal(mu, 2, 30)), "rnonlin": list(rng.uniform(0.8, 1, 30))}
               for m, mu in (("demucs", 12), ("wave-u-net", 10), ("a-spade", 7))}
    results["a-spade"]["rnonlin"] = [math.nan]  # nothing finite: no box, no crash
    check_png(boxplot(results, tmp_path / "b.png"))
    sweep = {m: {x: list(rng.normal(x * k, 1, 20)) for x in (1, 3, 5, 7, 10, 15, 20)}
             for m, k in (("demucs", 1.2), ("a-spade", 0.8))}
    check_png(sweep_plot(sweep, tmp_path / "s.png", "input SDR [dB]", "ΔSI-SDR [dB]",
                         baseline={x: [0.0] for x in (1, 3, 5, 7, 10, 15, 20)}))
    mean, low, high = confidence_interval([1.0, 2.0, 3.0, 4.0])
    # t_{0.975, 3} = 3.182446; s = 1.290994; n = 4
    assert (mean, low, high) == pytest.approx((2.5, 2.5 - 3.182446 * 1.290994 / 2, 2.5 + 3.182446 * 1.290994 / 2),
                                              rel=1e-5)


def test_fad_with_too_little_audio_is_reported_not_fatal(tmp_path, capsys):
    for side in ("e", "r"):
        (tmp_path / side).mkdir()
        sf.write(tmp_path / side / "a.wav", clip(2, seconds=0.5), SR)
    code, out, err = run(["eval", tmp_path / "e", tmp_path / "r", "-m", "si_sdr,fad", "--json"], capsys)
    doc = json.loads(out)
    assert code == 2 and doc["methods"][0]["set_metrics"]["fad"] is None
    assert doc["methods"][0]["files"][0]["scores"]["si_sdr"] > 100  # identical files: still scored
    assert "fad: FAD needs at least 2 embedding vectors per set, got 1" in doc["errors"][0]
