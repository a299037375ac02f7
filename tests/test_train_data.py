"""Pairing dry/wet folders (knobs.csv, SignalTrain names), knob normalisation, and crops."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from fxnet.errors import DataError, UsageError
from fxnet.knobs import KnobSpec
from fxnet.train.data import (CropLayout, _gather, FolderData, LoadedPair, PairReport, discover_pairs, parse_knob_range,
                              signaltrain_name)


def touch(path, frames=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(frames, np.float32), 44100)
    return path


def test_signaltrain_names():
    assert signaltrain_name("take1__0.3__0.7") == ("take1", (0.3, 0.7))
    assert signaltrain_name("target_LA2A__-12.5__1e-1") == ("target_LA2A", (-12.5, 0.1))
    assert signaltrain_name("take1") is None
    assert signaltrain_name("take1__loud") is None
    assert signaltrain_name("__0.3") is None


def test_parse_knob_range():
    assert parse_knob_range("threshold=-40:0:dB") == KnobSpec("threshold", -40.0, 0.0, "dB")
    assert parse_knob_range("mix=0:100") == KnobSpec("mix", 0.0, 100.0, "")
    for bad in ("threshold", "t=1", "t=a:b", "t=1:1", "=0:1"):
        with pytest.raises(UsageError, match="NAME=LO:HI"):
            parse_knob_range(bad)


def test_signaltrain_style_folder_shares_one_dry_file(tmp_path):
    touch(tmp_path / "dry" / "take1.wav")
    touch(tmp_path / "dry" / "take2.wav")
    for name in ("take1__0.3__0.7.wav", "take1__1__0.wav", "take2__0.5__0.5.wav"):
        touch(tmp_path / "wet" / name)
    pairs, specs = discover_pairs(tmp_path / "dry", tmp_path / "wet")
    assert [k.name for k in specs] == ["knob1", "knob2"]
    got = {p.wet.name: (p.dry.name, p.knobs) for p in pairs}
    assert got == {"take1__0.3__0.7.wav": ("take1.wav", (0.3, 0.7)), "take1__1__0.wav": ("take1.wav", (1.0, 0.0)),
                   "take2__0.5__0.5.wav": ("take2.wav", (0.5, 0.5))}


def test_signaltrain_names_with_physical_ranges(tmp_path):
    touch(tmp_path / "dry" / "in.wav")
    touch(tmp_path / "wet" / "in__-20__4.wav")
    ranges = [parse_knob_range("threshold=-40:0:dB"), parse_knob_range("ratio=1:5")]
    (pair,), specs = discover_pairs(tmp_path / "dry", tmp_path / "wet", ranges=ranges)
    assert [s.name for s in specs] == ["threshold", "ratio"] and specs[0].unit == "dB"
    assert pair.knobs == pytest.approx((0.5, 0.75))
    touch(tmp_path / "wet2" / "in__3.wav")
    with pytest.raises(DataError, match="outside 0-1; give its physical range with --knob-range knob1=LO:HI"):
        discover_pairs(tmp_path / "dry", tmp_path / "wet2")


def test_knobs_csv_with_ranges_and_dry_column(tmp_path):
    touch(tmp_path / "dry" / "di.wav")
    touch(tmp_path / "dry" / "other.wav")
    touch(tmp_path / "wet" / "a.wav")
    touch(tmp_path / "wet" / "b.wav")
    touch(tmp_path / "wet" / "unlisted.wav")
    (tmp_path / "wet" / "knobs.csv").write_text("file,drive,dry,tone\na.wav,10,di.wav,0.25\nb.wav, 0 ,di.wav,1\n")
    pairs, specs = discover_pairs(tmp_path / "dry", tmp_path / "wet", ranges=[parse_knob_range("drive=0:20:dB")])
    assert [(s.name, s.minimum, s.maximum, s.unit) for s in specs] == [("drive", 0, 20, "dB"), ("tone", 0, 1, "")]
    assert [(p.wet.name, p.dry.name, p.knobs) for p in pairs] == [("a.wav", "di.wav", (0.5, 0.25)),
                                                                   ("b.wav", "di.wav", (0.0, 1.0))]
    with pytest.raises(UsageError, match="unknown knob.*level.*the data's knobs: drive, tone"):
        discover_pairs(tmp_path / "dry", tmp_path / "wet", ranges=[parse_knob_range("level=0:1")])


@pytest.mark.parametrize("text,message", [
    ("name,drive\na.wav,0.5\n", "first column must be 'file'"),
    ("file,drive\na.wav,loud\n", "line 2: knob values must be numbers"),
    ("file,drive\nmissing.wav,0.5\n", "lists 'missing.wav', which is not in"),
    ("file,drive\na.wav,0.5,1\n", "line 2 has 3 fields"),
    ("file,drive\na.wav,1.5\n", "knob 'drive' = 1.5 is outside 0-1"),
])
def test_knobs_csv_errors(tmp_path, text, message):
    touch(tmp_path / "dry" / "a.wav")
    touch(tmp_path / "wet" / "a.wav")
    (tmp_path / "wet" / "knobs.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        discover_pairs(tmp_path / "dry", tmp_path / "wet")


def test_missing_dry_file_is_named(tmp_path):
    touch(tmp_path / "dry" / "a.wav")
    touch(tmp_path / "dry" / "b.wav")
    touch(tmp_path / "wet" / "c.wav")
    with pytest.raises(DataError, match=r"c\.wav: no dry file for it"):
        discover_pairs(tmp_path / "dry", tmp_path / "wet")


def _loaded(x, y, knobs=()):
    return LoadedPair(x, y, knobs, PairReport("d", "w", knobs, 0, 1.0, x.shape[-1] / 100))


def test_crops_follow_the_geometry_and_pad_like_the_engine():
    n_samples = 5000
    x = (np.arange(n_samples, dtype=np.float32) + 1)[None]  # unique values: positions are recoverable
    layout = CropLayout(left=5, right=3, latency=2, n=64)
    data = FolderData([_loaded(x, -x, (0.25,))], layout=layout, knob_specs=[KnobSpec("k")], sample_rate=100,
                      split="time")
    inputs, targets, knobs = data.sample(256, np.random.default_rng(0), 0)
    assert inputs.shape == (256, 1, 72) and targets.shape == (256, 1, 64) and knobs.shape == (256, 1)
    assert torch.all(knobs == 0.25)
    # target sample i is the wet at input position left + i - latency (zero padding before the file)
    np.testing.assert_array_equal(targets.numpy(), -inputs[..., 3:67].numpy())
    first = targets[:, 0, 0].neg()
    assert first.min() >= 1 and first.max() <= int(0.88 * n_samples) - 64 + 1  # training part only
    # the crop whose target starts the file reads target_offset = 3 zeros first, as the engine does
    x0, y0, _ = _gather(data._train, np.array([0]), np.array([0]), layout)
    np.testing.assert_array_equal(x0[0, 0, :5].numpy(), [0, 0, 0, 1, 2])
    assert y0[0, 0, 0] == -1


def test_time_split_holds_out_the_end_of_each_pair():
    x = (np.arange(10000, dtype=np.float32) + 1)[None]
    layout = CropLayout(left=0, right=0, latency=0, n=256)
    data = FolderData([_loaded(x, 2 * x, (0.0,)), _loaded(x, 3 * x, (1.0,))], layout=layout,
                      knob_specs=[KnobSpec("k")], sample_rate=100)
    assert data.split == "time"
    val = data.validation
    assert val.settings == [(0.0,), (1.0,)]
    assert val.inputs.min() > 8800 and val.inputs.shape[-1] == 256  # last 12 %
    ratio = val.targets / val.inputs
    np.testing.assert_array_equal(ratio[val.setting == 0], 2.0)
    np.testing.assert_array_equal(ratio[val.setting == 1], 3.0)
    x_train, _, _ = data.sample(512, np.random.default_rng(1), 0)
    assert x_train.max() <= 8800


def test_file_split_and_remove_direction():
    pairs = [_loaded(np.full((1, 3000), i + 1, np.float32), np.full((1, 3000), -(i + 1), np.float32))
             for i in range(8)]
    data = FolderData(pairs, layout=CropLayout(0, 0, 0, 512), knob_specs=[], sample_rate=100,
                      direction="remove", seed=3)
    assert data.split == "file"
    held = set(data.validation.targets[:, 0, 0].unique().tolist())
    x, y, k = data.sample(400, np.random.default_rng(0), 0)
    assert torch.all(x < 0) and torch.all(y == -x) and k.shape == (400, 0)  # wet in, dry out
    assert held and held.isdisjoint(set(y[:, 0, 0].unique().tolist()))


def test_too_short_for_the_segment():
    x = np.ones((1, 1000), np.float32)
    with pytest.raises(DataError, match="shorter than one segment of 4096 samples"):
        FolderData([_loaded(x, x)], layout=CropLayout(0, 0, 0, 4096), knob_specs=[], sample_rate=100)
