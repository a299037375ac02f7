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
    assert {"comp4c", "la2a"} <= set(BUNDLED)


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


@pytest.mark.parametrize("name,knobs", [("comp4c", [0.5, 0.5, 0.3, 0.5]), ("la2a", [0.0, 0.7]), ("la2a", [1.0, 0.5])])
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
