"""Removal: the U-Net architectures, the removal corruptions, and `fxnet remove` end to end."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from fxnet.effects import get_effect
from fxnet.effects.clipping import input_sdr_db
from fxnet.effects.overdrive import sox_overdrive
from fxnet.engine import process_tensor
from fxnet.models import build
from fxnet.synth import generate

SR = 44100


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fxnet", *args], capture_output=True, input=stdin, timeout=600)


# ------------------------------------------------------------------------ architectures
@pytest.mark.parametrize("config", [
    {"arch": "demucs", "channels": 4, "depth": 3, "context": 256, "chunk": 1024, "overlap": 0},
    {"arch": "waveunet", "levels": 3, "growth": 4, "context": 64, "chunk": 512, "overlap": 0},
])
def test_untrained_remover_is_identity_and_keeps_length(config):
    torch.manual_seed(0)
    model = build({"sample_rate": SR, **config}).eval()
    g = model.geometry
    assert g.left_context == g.right_context == config["context"]
    x = torch.randn(2, 1, g.left_context + 3 * g.multiple + g.right_context)
    with torch.no_grad():
        y = model(x, torch.zeros(2, 0))
    assert y.shape == (2, 1, 3 * g.multiple)
    torch.testing.assert_close(y, x[..., g.left_context : -g.right_context])


def test_demucs_default_size_is_about_a_million_parameters():
    model = build({"arch": "demucs", "sample_rate": SR})
    n = sum(p.numel() for p in model.parameters())
    assert 0.8e6 < n < 1.3e6
    assert model.geometry.multiple == 4**5


@pytest.mark.parametrize("arch", ["demucs", "waveunet"])
def test_remover_geometry_rejects_misaligned_context(arch):
    with pytest.raises(Exception, match="multiple"):
        build({"arch": arch, "sample_rate": SR, "context": 1000})


def test_demucs_streaming_matches_one_pass_away_from_chunk_edges():
    """With enough context, chunked output equals whole-signal output to float precision
    (the BLSTM sees the whole chunk, so it is not bit-exact: the context bounds the error)."""
    torch.manual_seed(1)
    model = build({"arch": "demucs", "sample_rate": SR, "channels": 4, "depth": 3, "context": 4096,
                   "chunk": 2048, "overlap": 0}).eval()
    for p in model.decoder[-1].parameters():  # make the correction non-zero
        torch.nn.init.normal_(p, std=0.05)
    x = torch.from_numpy(generate(1, 20000, SR, seed=3, families=["chord"]))
    streamed = process_tensor(model, x, knobs=[])
    n = x.shape[-1]
    pad = (-n) % 64
    with torch.no_grad():
        whole = model(torch.nn.functional.pad(x[None], (4096, 4096 + pad)), torch.zeros(1, 0))[0, :, :n]
    assert streamed.shape == x.shape
    err = (streamed - whole).abs().max().item()
    assert err < 1e-3 * whole.abs().max().item()


# --------------------------------------------------------------------- the corruptions
def test_clip_sdr_hits_its_input_sdr():
    x = generate(6, SR, SR, seed=1, families=["string", "drums"])
    eff = get_effect("clip_sdr")
    for knob, target in [(0.0, 1.0), (0.5, 10.5), (1.0, 20.0)]:
        y = eff(x, SR, [knob])
        np.testing.assert_allclose(input_sdr_db(x, y), target, atol=1e-3)


def test_overdrive_ceg_is_sox_overdrive_at_colour_20():
    x = generate(2, 4096, SR, seed=2)
    y = get_effect("overdrive_ceg")(x, SR, [0.5])
    np.testing.assert_array_equal(y, sox_overdrive(x, 35.0, 20.0))


def test_distortion_kinds_keep_quiet_signals_and_distort_loud_ones():
    eff = get_effect("distortion")
    t = np.arange(SR // 10) / SR
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for kind in (0, 1, 2):  # clippers: scale-preserving (a tiny signal passes through)
        quiet = x.copy()
        quiet[: len(x) // 2] *= 1e-3  # the first half stays far below the clip level
        y = eff(quiet, SR, [kind / 3, 1.0])
        np.testing.assert_allclose(y[: len(x) // 4], quiet[: len(x) // 4], atol=2e-5)
        assert input_sdr_db(quiet, y) < 25.0
    heavy, light = (input_sdr_db(x, eff(x, SR, [1 / 3, a])) for a in (1.0, 0.1))
    assert heavy < light
    np.testing.assert_array_equal(eff(x, SR, [1.0, 0.0]), sox_overdrive(x, 20.0, 20.0))


def test_remove_training_has_no_knobs(tmp_path):
    """--direction remove: the model is not told the distortion's settings."""
    from fxnet.checkpoint import load_model

    out = tmp_path / "declip.safetensors"
    r = _cli("profile", "--synth", "clip_sdr", "--direction", "remove", "--arch", "demucs",
             "--arch-config", "channels=4", "--arch-config", "depth=3", "--arch-config", "context=1024",
             "--families", "music", "--segment", "2048", "--batch-size", "2", "--steps", "3",
             "--checkpoint-every", "3", "--val-clips", "1", "--synth-pool", "4", "--threads", "1",
             "-o", str(out), "--json", "-q")
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout)
    assert [row["knobs"] for row in summary["validation"]["per_setting"]][0] == {"input_sdr_db": 0.0}
    net, info = load_model(out)
    assert info.task == "remove" and net.num_knobs == 0


def test_synth_peak_range_sets_clip_levels():
    from fxnet.train.data import CropLayout
    from fxnet.train.synthdata import SynthData

    data = SynthData("overdrive_ceg", layout=CropLayout(0, 0, 0, 1024), pool_clips=8, val_clips=2,
                     families=["chord"], peak_dbfs=(-12.0, -6.0))
    peaks = 20 * np.log10(np.abs(data.pool).max(axis=-1))
    assert np.all(peaks >= -12.01) and np.all(peaks <= -5.99)


# ------------------------------------------------------------------------- the command
@pytest.fixture
def identity_remover(tmp_path):
    from fxnet.checkpoint import save_model

    torch.manual_seed(0)
    model = build({"arch": "demucs", "sample_rate": SR, "channels": 4, "depth": 3, "context": 1024,
                   "chunk": 8192, "overlap": 0})
    return save_model(model, tmp_path / "ident.safetensors", task="remove", name="ident")


@pytest.fixture
def clipped_wav(tmp_path):
    x = generate(1, SR, SR, seed=5, families=["chord"])[0]
    y = get_effect("clip_sdr")(x, SR, [0.6])  # 12.4 dB input SDR
    y = y / np.abs(y).max() * 0.9  # clipped, then normalised (what masters look like)
    path = tmp_path / "clipped.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    return path, x


def test_remove_report_detects_clipping(clipped_wav, identity_remover, tmp_path):
    path, _ = clipped_wav
    out = tmp_path / "out.wav"
    r = _cli("remove", str(path), "-o", str(out), "--model", str(identity_remover), "--report", "--json")
    assert r.returncode == 0, r.stderr.decode()
    rec = json.loads(r.stdout)["files"][0]
    assert rec["extra"]["clipping"]["clipped"] is True
    assert rec["extra"]["clipping"]["threshold"] == pytest.approx(0.9, abs=1e-3)
    assert 0.01 < rec["extra"]["clipping"]["clipped_fraction"] < 0.5
    assert "clipped:" in r.stderr.decode() and "removed with ident" in r.stderr.decode()
    y, sr = sf.read(out)
    x, _ = sf.read(path)
    assert sr == SR and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=2e-4)  # the identity remover changes nothing


def test_remove_refuses_an_effect_model(clipped_wav, identity_model, tmp_path):
    path, _ = clipped_wav
    r = _cli("remove", str(path), "-o", str(tmp_path / "o.wav"), "--model", str(identity_model))
    assert r.returncode == 1
    assert "not a remover" in r.stderr.decode()
    assert not (tmp_path / "o.wav").exists()


def test_remove_aspade_method_restores_clipped_peaks(tmp_path):
    t = np.arange(SR // 4) / SR  # a sparse signal (two partials): A-SPADE converges in few iterations
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)  # abrupt edges are not sparse: A-SPADE would crawl
    clean = (fade * (0.6 * np.sin(2 * np.pi * 441 * t) + 0.3 * np.sin(2 * np.pi * 1102.5 * t))).astype(np.float32)
    path = tmp_path / "sines.wav"
    sf.write(path, get_effect("clip_sdr")(clean, SR, [0.5]), SR, subtype="FLOAT")
    out = tmp_path / "as.wav"
    r = _cli("remove", str(path), "-o", str(out), "--method", "aspade", "--aspade-window", "1024", "--bits", "32f",
             "--json")
    assert r.returncode == 0, r.stderr.decode()
    y, _ = sf.read(out)
    x, _ = sf.read(path)
    rec = json.loads(r.stdout)["files"][0]
    assert rec["extra"]["model"] == "aspade"
    assert np.abs(y).max() > np.abs(x).max() + 0.01  # peaks rebuilt above the clip level

    def si_sdr(est, ref):
        a = est @ ref / (ref @ ref)
        return 10 * np.log10(np.sum((a * ref) ** 2) / np.sum((a * ref - est) ** 2))

    assert si_sdr(clean, y) > si_sdr(clean, x) + 1.0


def test_remove_normalizes_restored_peaks_in_fixed_point(tmp_path):
    """Restored peaks above full scale: a 16-bit output is scaled down, not re-clipped."""
    from fxnet.process import FileProcessor, ProcessOptions
    from fxnet.models.simple import Gain

    x = 0.9 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR).astype(np.float32)
    src = tmp_path / "in.wav"
    sf.write(src, x, SR, subtype="PCM_16")
    proc = FileProcessor(Gain(sample_rate=SR), options=ProcessOptions(clip_mode="normalize", gain_db=6.0))
    res = proc.run(str(src), str(tmp_path / "out.wav"))
    y, _ = sf.read(tmp_path / "out.wav")
    expected = 20 * np.log10(10 ** (-0.1 / 20) / (0.9 * 10 ** (6 / 20)))
    assert res.extra["normalized_db"] == pytest.approx(expected, abs=0.02)
    assert np.abs(y).max() == pytest.approx(10 ** (-0.1 / 20), abs=2e-4)
    assert res.over_full_scale == 0
    np.testing.assert_allclose(y / np.abs(y).max(), x / np.abs(x).max(), atol=1e-3)  # shape kept


def test_remove_reads_stdin_and_writes_stdout(clipped_wav, identity_remover):
    path, _ = clipped_wav
    data = path.read_bytes()
    r = _cli("remove", "-", "-o", "-", "--model", str(identity_remover), "-q", stdin=data)
    assert r.returncode == 0, r.stderr.decode()
    y, sr = sf.read(io.BytesIO(r.stdout))
    x, _ = sf.read(path)
    np.testing.assert_allclose(y, x, atol=2e-4)


def test_remove_batch_continues_past_a_bad_file(clipped_wav, identity_remover, tmp_path):
    path, _ = clipped_wav
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    outdir = tmp_path / "out"
    r = _cli("remove", str(bad), str(path), "-o", str(outdir), "--model", str(identity_remover))
    assert r.returncode == 2
    assert "bad.wav" in r.stderr.decode()
    assert (outdir / "clipped.clean.wav").exists() and not (outdir / "bad.clean.wav").exists()


def test_aspade_through_the_engine_equals_one_pass():
    """Chunks overlap by a window and sit on the hop grid: chunked == whole-signal A-SPADE."""
    from fxnet.restore.aspade import aspade
    from fxnet.restore.pipeline import AspadeModel

    t = np.arange(6000) / SR
    clean = (0.7 * np.sin(2 * np.pi * 689.0625 * t) + 0.2 * np.sin(2 * np.pi * 1378.125 * t)).astype(np.float32)
    y = get_effect("clip_sdr")(clean, SR, [0.8])
    theta = float(np.abs(y).max())
    whole = aspade(y, threshold=theta, window=256)
    model = AspadeModel(sample_rate=SR, threshold=theta, window=256, chunk=1024)
    chunked = process_tensor(model, torch.from_numpy(y)[None], knobs=[]).numpy()[0]
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert np.abs(chunked).max() > theta  # it restored peaks
