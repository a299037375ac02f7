"""Checkpoint format: safetensors + JSON metadata, never unpickled, clear errors."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from fxnet.checkpoint import load_model, read_header, save_model
from fxnet.errors import CheckpointError
from fxnet.knobs import KnobSpec
from fxnet.models.simple import FIR


def _model():
    m = FIR(sample_rate=48000, taps=16, latency=2, knobs=[KnobSpec("drive", 0, 40, "dB", 0.25, description="d")])
    with torch.no_grad():
        m.knob_taps.normal_()
    return m


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    m = _model()
    path = save_model(m, tmp_path / "m.safetensors", task="remove", description="test", training={"steps": 3})
    loaded, info = load_model(path)
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert info.task == "remove"
    assert info.meta["training"] == {"steps": 3}
    assert info.meta["geometry"]["left_context"] == 15 and info.meta["geometry"]["latency"] == 2
    assert info.knobs == [KnobSpec("drive", 0, 40, "dB", 0.25, description="d")]
    assert info.num_parameters == 16 + 16
    assert loaded.geometry == m.geometry
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary


def test_file_is_plain_safetensors_with_json_header(tmp_path):
    path = save_model(_model(), tmp_path / "m.safetensors")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["fxnet"])
    assert meta["model"]["arch"] == "fir" and meta["model"]["taps"] == 16
    assert meta["format_version"] == 1


def test_truncated_file(tmp_path):
    path = save_model(_model(), tmp_path / "m.safetensors")
    (tmp_path / "t.safetensors").write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match=r"t\.safetensors: truncated model file"):
        load_model(tmp_path / "t.safetensors")


@pytest.mark.parametrize("payload,message", [
    (b"", "too short"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "bad header length"),
    (struct.pack("<Q", 5) + b"{xx}!", "not JSON"),
])
def test_corrupt_or_foreign_bytes(tmp_path, payload, message):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        load_model(bad)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not an fxnet model"):
        read_header(tmp_path / "other.safetensors")


def test_weights_not_matching_architecture(tmp_path):
    from safetensors.torch import save_file

    meta = {"format_version": 1, "model": {"arch": "fir", "sample_rate": 44100, "taps": 8}}
    save_file({"h0": torch.zeros(4), "knob_taps": torch.zeros(0, 4)}, str(tmp_path / "x.safetensors"),
              metadata={"fxnet": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not match architecture 'fir'"):
        load_model(tmp_path / "x.safetensors")


def test_unknown_architecture_and_missing_file(tmp_path):
    from safetensors.torch import save_file

    meta = {"format_version": 1, "model": {"arch": "nope", "sample_rate": 44100}}
    save_file({"w": torch.zeros(1)}, str(tmp_path / "u.safetensors"), metadata={"fxnet": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unknown architecture 'nope'"):
        load_model(tmp_path / "u.safetensors")
    with pytest.raises(CheckpointError, match="model file not found"):
        load_model(tmp_path / "missing.safetensors")


def test_newer_format_is_refused(tmp_path):
    from safetensors.torch import save_file

    meta = {"format_version": 99, "model": {"arch": "fir", "sample_rate": 44100}}
    save_file({"w": torch.zeros(1)}, str(tmp_path / "n.safetensors"), metadata={"fxnet": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="newer fxnet"):
        read_header(tmp_path / "n.safetensors")
