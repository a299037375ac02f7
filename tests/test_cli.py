"""End-to-end tests of `fxnet apply` and the CLI conventions (exit codes, errors, batches)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import run  # tests/ is on sys.path (pytest rootdir-relative import)



def partials(*dirs: Path) -> list[Path]:
    return [p for d in dirs for p in Path(d).glob(".*fxnet-partial")]


def test_apply_keeps_rate_channels_subtype_and_length(make_wav, identity_model, tmp_path, capsys):
    src = make_wav("in.wav", seconds=2.3, channels=2, subtype="PCM_24")
    code, out, err = run(["apply", src, "-o", tmp_path / "out.wav", "--model", identity_model], capsys)
    assert code == 0, err
    assert out == ""  # nothing but data on stdout
    info_in, info_out = sf.info(src), sf.info(tmp_path / "out.wav")
    assert (info_out.samplerate, info_out.channels, info_out.frames, info_out.subtype) == \
        (info_in.samplerate, info_in.channels, info_in.frames, "PCM_24")
    a, _ = sf.read(src, dtype="float32")
    b, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(b, a, atol=2 ** -22)  # identity model, 24-bit rounding only


def test_resamples_to_model_rate_and_back(make_wav, identity_model, tmp_path, capsys):
    src = make_wav("in48.wav", seconds=1.0, sr=48000, subtype="FLOAT", amplitude=0.5)
    a, _ = sf.read(src, dtype="float32")
    # keep the test signal inside the 44.1 kHz band: the identity must then survive the round trip
    code, _, err = run(["apply", src, "-o", tmp_path / "o.wav", "--model", identity_model], capsys)
    assert code == 0, err
    b, sr = sf.read(tmp_path / "o.wav", dtype="float32")
    assert sr == 48000 and b.shape == a.shape
    # the fixture's white-noise part above 22.05 kHz is removed; compare the tonal part
    err_db = 10 * np.log10(np.sum((a - b) ** 2) / np.sum(a**2))
    assert err_db < -20


def test_output_rate_bits_and_format_options(make_wav, identity_model, tmp_path, capsys):
    src = make_wav("x.wav", seconds=0.5)
    code, _, err = run(["apply", src, "-o", tmp_path / "y.flac", "--model", identity_model, "--rate", "22050",
                        "--bits", "24"], capsys)
    assert code == 0, err
    info = sf.info(tmp_path / "y.flac")
    assert (info.format, info.subtype, info.samplerate, info.frames) == ("FLAC", "PCM_24", 22050, 11025)


def test_knob_errors_are_one_line_usage_errors(make_wav, identity_model, tmp_path, capsys):
    src = make_wav()
    code, out, err = run(["apply", src, "-o", tmp_path / "o.wav", "--model", identity_model, "--knobs", "0.1,0.2,0.3"], capsys)
    assert code == 1
    assert err == "fxnet: error: --knobs got 3 values but the model has 2 knob(s); valid knobs: tone [0..1], level [-12..12 dB]\n"
    code, _, err = run(["apply", src, "-o", tmp_path / "o.wav", "--model", identity_model, "--knob", "level=20dB"], capsys)
    assert code == 1 and "out of range" in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()


def test_batch_continues_past_bad_files_and_reports_them(make_wav, identity_model, tmp_path, capsys):
    good1 = make_wav("in/a.wav")
    good2 = make_wav("in/c.flac", subtype="PCM_16")
    (tmp_path / "in" / "b.wav").write_bytes(b"RIFF....not audio at all")
    nan = np.zeros((1000, 1), np.float32)
    nan[500] = np.nan
    sf.write(tmp_path / "in" / "d.wav", nan, 44100, subtype="FLOAT")
    sf.write(tmp_path / "in" / "e.wav", np.zeros((0, 1), np.float32), 44100)
    code, out, err = run(["apply", tmp_path / "in", tmp_path / "missing.wav", "-o", tmp_path / "out",
                          "--model", identity_model, "--json"], capsys)
    assert code == 2
    summary = json.loads(out)
    by_name = {Path(f["input"]).name: f for f in summary["files"]}
    assert summary["ok"] == 2 and summary["failed"] == 4
    assert by_name["a.wav"]["ok"] and by_name["c.flac"]["ok"]
    assert "cannot decode audio" in by_name["b.wav"]["error"] and "b.wav" in by_name["b.wav"]["error"]
    assert "NaN or Inf samples (first at frame 500)" in by_name["d.wav"]["error"]
    assert "contains no audio" in by_name["e.wav"]["error"]
    assert by_name["missing.wav"]["error"].endswith("missing.wav: no such file")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.fx.wav", "c.fx.flac"]
    assert "4 file(s) failed" in err
    assert not partials(tmp_path / "out", tmp_path / "in")
    assert good1.exists() and good2.exists()


def test_never_overwrites_inputs_or_existing_outputs(make_wav, identity_model, tmp_path, capsys):
    src = make_wav("song.wav")
    before = src.read_bytes()
    code, _, err = run(["apply", src, "-o", src, "--model", identity_model, "--force"], capsys)
    assert code == 2 and "output path equals an input" in err
    assert src.read_bytes() == before
    existing = tmp_path / "out.wav"
    existing.write_bytes(b"keep me")
    code, _, err = run(["apply", src, "-o", existing, "--model", identity_model], capsys)
    assert code == 2 and "already exists (use --force to overwrite)" in err
    assert existing.read_bytes() == b"keep me"
    code, _, err = run(["apply", src, "-o", existing, "--model", identity_model, "--force"], capsys)
    assert code == 0 and sf.info(existing).frames == sf.info(src).frames


def test_default_output_names_and_template(make_wav, identity_model, tmp_path, capsys):
    src = make_wav("take.wav")
    code, _, _ = run(["apply", src, "--model", identity_model], capsys)
    assert code == 0 and (tmp_path / "take.fx.wav").exists()
    code, _, _ = run(["apply", src, "-o", f"{tmp_path}/dir/", "--model", identity_model, "--template", "{model}-{stem}.flac"], capsys)
    assert code == 0 and sf.info(tmp_path / "dir" / "identity-take.flac").format == "FLAC"


def test_unwritable_or_missing_output_directory(make_wav, identity_model, tmp_path, capsys):
    src = make_wav()
    code, _, err = run(["apply", src, "-o", tmp_path / "nowhere" / "o.wav", "--model", identity_model], capsys)
    assert code == 2 and err.strip().endswith("nowhere: directory does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        code, _, err = run(["apply", src, "-o", locked / "o.wav", "--model", identity_model], capsys)
        assert code == 2 and "directory is not writable" in err
    finally:
        locked.chmod(0o700)


def test_unknown_model_is_a_clear_error(make_wav, tmp_path, capsys):
    code, _, err = run(["apply", make_wav(), "-o", tmp_path / "o.wav", "--model", "no_such_model"], capsys)
    assert code == 2
    assert err.startswith("fxnet: error: ") and "no_such_model" in err and err.count("\n") == 1


def test_corrupt_model_file(make_wav, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    code, _, err = run(["apply", make_wav(), "-o", tmp_path / "o.wav", "--model", bad], capsys)
    assert code == 2 and "bad.safetensors" in err


def test_clip_mode_error_fails_the_file_and_leaves_nothing(make_wav, identity_model, tmp_path, capsys):
    src = make_wav(amplitude=0.9)
    code, _, err = run(["apply", src, "-o", tmp_path / "o.wav", "--model", identity_model, "--gain-db", "12",
                        "--clip-mode", "error"], capsys)
    assert code == 2 and "exceeds full scale" in err
    assert not (tmp_path / "o.wav").exists() and not partials(tmp_path)
    code, out, _ = run(["apply", src, "-o", tmp_path / "o.wav", "--model", identity_model, "--gain-db", "12",
                        "--json", "-q"], capsys)
    res = json.loads(out)["files"][0]
    assert code == 0 and res["over_full_scale"] > 0 and res["peak"] > 1.0
    assert np.abs(sf.read(tmp_path / "o.wav")[0]).max() <= 1.0


def test_torchrun_env_shards_inputs(make_wav, identity_model, tmp_path, capsys, monkeypatch):
    files = [make_wav(f"in/{i}.wav", seconds=0.1) for i in range(5)]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, out, _ = run(["apply", *files, "-o", tmp_path / "out", "--model", identity_model, "--json", "-q"], capsys)
    assert code == 0
    assert [Path(f["input"]).name for f in json.loads(out)["files"]] == ["1.wav", "3.wav"]


def test_usage_errors_exit_1(capsys):
    code, _, err = run(["apply", "x.wav", "--bogus"], capsys)
    assert code == 1 and err.startswith("fxnet: error: No such option: --bogus")
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("fxnet ")


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fxnet", *map(str, args)], capture_output=True, **kw)


def test_stdin_to_stdout_pipe(make_wav, identity_model, tmp_path):
    src = make_wav(seconds=0.7, channels=2)
    proc = _cli("apply", "-", "-o", "-", "--model", identity_model, "-q", input=src.read_bytes())
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "piped.wav").write_bytes(proc.stdout)
    a, _ = sf.read(src, dtype="int16")
    b, _ = sf.read(tmp_path / "piped.wav", dtype="int16")
    assert b.shape == a.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_multi_minute_file_through_the_console_script(tmp_path, identity_model):
    """A 4-minute stereo 44.1 kHz file, end to end through the real `fxnet` process."""
    sr, seconds = 44100, 240
    t = np.arange(sr * seconds) / sr
    x = np.stack([0.4 * np.sin(2 * np.pi * 110 * t), 0.3 * np.sin(2 * np.pi * 440 * t + 1)], 1).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, sr, subtype="PCM_16")
    proc = _cli("apply", tmp_path / "long.wav", "-o", tmp_path / "long_out.wav", "--model", identity_model, "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)["files"][0]
    assert res["seconds"] == pytest.approx(240.0)
    a, _ = sf.read(tmp_path / "long.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "long_out.wav", dtype="int16")
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_ctrl_c_leaves_no_partial_file(tmp_path, identity_model):
    sr = 44100
    x = (0.1 * np.random.default_rng(0).standard_normal((sr * 600, 1))).astype(np.float32)
    sf.write(tmp_path / "big.wav", x, sr, subtype="PCM_16")
    out = tmp_path / "o"
    out.mkdir()
    # tiny chunks make the run slow enough to interrupt
    proc = subprocess.Popen([sys.executable, "-m", "fxnet", "apply", str(tmp_path / "big.wav"), "-o",
                             str(out / "big_out.wav"), "--model", str(identity_model), "--chunk-seconds", "0.001",
                             "--batch-size", "1"], stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not partials(out):
        time.sleep(0.05)
    assert partials(out), "the run never started writing"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert list(out.iterdir()) == []


def test_knob_automation_file(tmp_path, capsys):
    """A gain knob ramped by a CSV: the output level follows it, chunk by chunk."""
    from fxnet.checkpoint import save_model
    from fxnet.knobs import KnobSpec
    from fxnet.models.simple import Gain

    model = Gain(sample_rate=8000, knobs=[KnobSpec("cut", 0, 20, "dB", default=0.0)])
    with torch.no_grad():
        model.knob_db.fill_(-20.0)  # normalised 1 -> -20 dB
    path = save_model(model, tmp_path / "g.safetensors")
    sf.write(tmp_path / "ones.wav", np.full((16000, 1), 0.5, np.float32), 8000, subtype="FLOAT")
    (tmp_path / "auto.csv").write_text("time,cut\n0.5,0dB\n1.5,20dB\n")
    code, _, err = run(["apply", tmp_path / "ones.wav", "-o", tmp_path / "o.wav", "--model", path,
                        "--knobs-file", tmp_path / "auto.csv"], capsys)
    assert code == 0, err
    y, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    # 0.1 s chunks, knobs at each chunk's centre: held before 0.5 s, ramp to 1.5 s, held after
    expected = []
    for k in range(20):
        centre = (k + 0.5) * 0.1
        cut = np.interp(centre, [0.5, 1.5], [0.0, 1.0])
        expected.append(np.full(800, 0.5 * 10 ** (-20 * cut / 20)))
    np.testing.assert_allclose(y, np.concatenate(expected), rtol=1e-5)
    (tmp_path / "bad.csv").write_text("time,depth\n0,1\n")
    code, _, err = run(["apply", tmp_path / "ones.wav", "-o", tmp_path / "o2.wav", "--model", path,
                        "--knobs-file", tmp_path / "bad.csv"], capsys)
    assert code == 1 and "unknown knob 'depth'; valid knobs: cut [0..20 dB]" in err
    (tmp_path / "back.csv").write_text("time,cut\n1,0\n0.5,1\n")
    code, _, err = run(["apply", tmp_path / "ones.wav", "-o", tmp_path / "o2.wav", "--model", path,
                        "--knobs-file", tmp_path / "back.csv"], capsys)
    assert code == 1 and "times must increase" in err
