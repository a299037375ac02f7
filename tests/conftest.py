"""Shared fixtures: every test runs with its own config/cache dirs (never the real home)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("fxnet-home")
    monkeypatch.setenv("FXNET_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("FXNET_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("HF_HOME", str(base / "hf"))
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture
def make_wav(tmp_path):
    """make_wav(name, seconds=1.0, sr=44100, channels=1, subtype='PCM_16', seed=0) -> path"""

    def _make(name="in.wav", seconds=1.0, sr=44100, channels=1, subtype="PCM_16", seed=0, amplitude=0.5):
        rng = np.random.default_rng(seed)
        n = max(1, int(round(seconds * sr)))
        t = np.arange(n) / sr
        sig = np.stack([amplitude * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(n)
                        for c in range(channels)], axis=1).astype(np.float32)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, sig, sr, subtype=subtype)
        return path

    return _make


@pytest.fixture
def identity_model(tmp_path):
    """A real fxnet checkpoint: a 2-knob FIR initialised to a delayed impulse (identity)."""
    from fxnet.checkpoint import save_model
    from fxnet.knobs import KnobSpec
    from fxnet.models.simple import FIR

    model = FIR(sample_rate=44100, taps=32, latency=3, chunk=8192,
                knobs=[KnobSpec("tone", 0, 1, default=0.5), KnobSpec("level", -12, 12, unit="dB", default=0.5)])
    return save_model(model, tmp_path / "identity.safetensors", description="identity FIR for tests")
