"""The bundled models: they resolve offline from the package, pass their checksums, are
documented, and still sound like their reference effects (a coarse quality regression)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fxnet.checkpoint import load_model
from fxnet.effects import get_effect
from fxnet.engine import process_tensor
from fxnet.registry import load_registry, resolve_model

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = [name for name, e in sorted(load_registry().items()) if e.bundled]


def test_there_are_bundled_models():
    assert {"comp4c", "la2a", "overdrive", "declip"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_resolves_offline_with_matching_checksum(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    entry = load_registry()[name]
    path = resolve_model(name)
    assert path == entry.bundled_path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    assert path.stat().st_size == entry.size_bytes < 5_000_000
    _, info = load_model(path)
    assert [k.name for k in info.knobs] == list(entry.knobs)
    assert (ROOT / "docs" / "models" / f"{name}.md").is_file()
    assert (ROOT / entry.recipe).is_file()


@pytest.mark.parametrize("name,knobs", [("comp4c", [0.5, 0.5, 0.3, 0.5]), ("la2a", [0.0, 0.7]), ("la2a", [1.0, 0.5]),
                                        ("overdrive", [0.4, 0.2]), ("overdrive", [1.0, 0.0])])
def test_sounds_like_its_reference_on_a_held_out_real_instrument(name, knobs):
    """Rendered piano (never used in training): ESR well below 'might sound ok' (0.1)."""
    x, sr = sf.read(ROOT / "bench" / "data" / "piano.flac", dtype="float32")
    model, info = load_model(resolve_model(name))
    y = get_effect(info.meta["training"]["data"]["effect"])(x, sr, knobs)
    yhat = process_tensor(model, torch.from_numpy(x)[None], knobs=knobs)[0].numpy()
    esr = float(np.sum((y - yhat) ** 2) / np.sum(y.astype(np.float64) ** 2))
    dry_esr = float(np.sum((y - x) ** 2) / np.sum(y.astype(np.float64) ** 2))
    assert esr < 0.1, esr
    assert esr < 0.5 * dry_esr  # and much closer than doing nothing


def _si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    est, ref = est.astype(np.float64), ref.astype(np.float64)
    a = est @ ref / (ref @ ref)
    return float(10 * np.log10(np.sum((a * ref) ** 2) / np.sum((a * ref - est) ** 2)))


@pytest.mark.parametrize("sdr", [3.0, 10.0, 20.0])
def test_declip_improves_a_clipped_real_instrument(sdr):
    """Rendered piano clipped at an input SDR: the bundled declipper raises SI-SDR and
    leaves the reliable samples exactly as they were."""
    from fxnet.effects.clipping import clip_to_input_sdr

    x, _ = sf.read(ROOT / "bench" / "data" / "piano.flac", dtype="float32")
    y = clip_to_input_sdr(x, sdr)
    model, info = load_model(resolve_model("declip"))
    assert info.task == "remove" and not info.knobs
    out = process_tensor(model, torch.from_numpy(y)[None], knobs=[])[0].numpy()
    assert _si_sdr(out, x) > _si_sdr(y, x) + 0.5
    reliable = np.abs(y) < 0.999 * np.abs(y).max()
    np.testing.assert_allclose(out[reliable], y[reliable], atol=1e-6)


def test_remove_runs_offline_on_the_bundled_clipped_example(tmp_path, monkeypatch):
    """The README's remove example, offline: auto-routing picks declip for a clipped file."""
    import json
    import subprocess
    import sys

    env = dict(__import__("os").environ, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    out = tmp_path / "clean.wav"
    r = subprocess.run([sys.executable, "-m", "fxnet", "remove", str(ROOT / "examples" / "guitar_clipped.flac"),
                        "-o", str(out), "--report", "--json"], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    rec = json.loads(r.stdout)["files"][0]
    assert rec["extra"]["model"] == "declip" and rec["extra"]["clipping"]["clipped"]
    clean, _ = sf.read(ROOT / "examples" / "guitar.flac", dtype="float32")
    clipped, _ = sf.read(ROOT / "examples" / "guitar_clipped.flac", dtype="float32")
    restored, _ = sf.read(out, dtype="float32")
    assert restored.shape == clipped.shape
    assert _si_sdr(restored, clean) > _si_sdr(clipped, clean) + 0.5


@pytest.mark.parametrize("rate", [16000, 48000])
def test_remove_declips_files_at_other_rates(rate, tmp_path):
    """A clipped file at 16 or 48 kHz: declip runs at the file's own rate (resampling to the
    model's 44.1 kHz would smear the clip plateaus, and nothing would be restored), so the
    output improves, keeps the file's rate and length, and reliable samples pass exactly."""
    import soxr

    from fxnet.cli.app import main
    from fxnet.effects.clipping import clip_to_input_sdr

    x, sr = sf.read(ROOT / "bench" / "data" / "piano.flac", dtype="float32")
    x = soxr.resample(x, sr, rate).astype(np.float32)
    y = clip_to_input_sdr(x, 5.0).astype(np.float32)
    src, dst = tmp_path / "clipped.wav", tmp_path / "clean.wav"
    sf.write(src, y, rate, subtype="FLOAT")
    with pytest.raises(SystemExit) as done:
        main(["remove", str(src), "-o", str(dst), "--quiet"])
    assert done.value.code == 0
    out, out_rate = sf.read(dst, dtype="float32")
    assert out_rate == rate and out.shape == y.shape
    assert _si_sdr(out, x) > _si_sdr(y, x) + 0.5
    reliable = np.abs(y) < 0.999 * np.abs(y).max()
    np.testing.assert_allclose(out[reliable], y[reliable], atol=1e-6)
