"""`fxnet eval --model NAME --testset DIR`: run a model over (input, target) pairs and score it.

Real checkpoints throughout: an untrained ``demucs`` remover (the identity at init, so
its scores must equal the unprocessed input's), the ``identity_model`` FIR effect of
conftest.py, and a copy of it whose ``level`` knob really changes the gain.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import run  # tests/ is on sys.path (pytest rootdir-relative import)
from fxnet.metrics.basic import esr, si_sdr

SR = 44100
METRICS = "si_sdr,esr,l1"



def save_demucs(path: Path, *, name: str, dc: float = 0.0) -> Path:
    """A small demucs remover; untrained it is the identity, ``dc`` adds that offset to every output."""
    from fxnet.checkpoint import save_model
    from fxnet.models import build

    model = build({"arch": "demucs", "sample_rate": SR, "channels": 4, "depth": 3, "context": 1024, "chunk": 8192,
                   "overlap": 0})
    with torch.no_grad():
        model.decoder[-1][-1].bias.fill_(dc)  # the output layer (zero at init: y = x + 0)
    return save_model(model, path, task="remove", name=name)


@pytest.fixture
def ident(tmp_path) -> Path:
    return save_demucs(tmp_path / "ident.safetensors", name="ident")


@pytest.fixture
def testset(tmp_path) -> Path:
    """3 one-second music-like clips: target/ clean, input/ hard-clipped to 10 dB input SDR.

    c1's target and c2's input are FLAC (pairing goes by name, not extension); the
    other inputs are float WAV with peaks raised above full scale, which must survive.
    """
    from fxnet.effects.clipping import clip_to_input_sdr
    from fxnet.synth import generate

    root = tmp_path / "set"
    (root / "input").mkdir(parents=True)
    (root / "target").mkdir()
    clean = generate(3, SR, SR, seed=7, families=("chord", "bass", "string", "pluck"))
    clean = 0.8 * clean / np.abs(clean).max(axis=1, keepdims=True)
    clipped = clip_to_input_sdr(clean, 10.0)
    for i in range(3):
        name = f"c{i}"
        if i == 1:
            sf.write(root / "target" / f"{name}.flac", clean[i], SR, subtype="PCM_24")
        else:
            sf.write(root / "target" / f"{name}.wav", clean[i], SR, subtype="FLOAT")
        if i == 2:
            sf.write(root / "input" / f"{name}.flac", clipped[i], SR, subtype="PCM_24")
        else:
            sf.write(root / "input" / f"{name}.wav", 1.5 * clipped[i] / np.abs(clipped[i]).max(), SR,
                     subtype="FLOAT")
    return root


def _read(path) -> np.ndarray:
    x, _ = sf.read(path, dtype="float64", always_2d=True)
    return x.T


def _scores(doc) -> dict[str, dict[str, dict[str, float]]]:
    return {m["name"]: {f["name"]: f["scores"] for f in m["files"]} for m in doc["methods"]}


def test_identity_remover_scores_equal_the_input_baseline(testset, ident, tmp_path, capsys):
    keep = tmp_path / "kept"
    code, out, err = run(["eval", "--model", ident, "--testset", testset, "--baseline", "-m", METRICS, "--json",
                          "--keep", keep], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [m["name"] for m in doc["methods"]] == ["ident", "input"]
    assert doc["testset"] == {"dir": str(testset), "model": str(ident), "name": "ident", "task": "remove",
                              "knobs": None, "knobs_normalised": None, "baselines": ["input"], "outputs": str(keep)}
    assert doc["reference"] == str(testset / "target") and doc["pairs"] == 6 and doc["failed"] == 0
    scores = _scores(doc)
    assert sorted(scores["ident"]) == ["c0", "c1", "c2"]
    for name, values in scores["input"].items():
        assert scores["ident"][name] == pytest.approx(values, rel=1e-9, abs=1e-12)
        inp = _read(next((testset / "input").glob(f"{name}.*")))
        tgt = _read(next((testset / "target").glob(f"{name}.*")))
        assert values["si_sdr"] == pytest.approx(si_sdr(inp, tgt), abs=1e-6)
        assert 5.0 < values["si_sdr"] < 20.0  # hard-clipped to 10 dB input SDR (the WAV inputs also rescaled)
    model = doc["methods"][0]
    assert model["processing"]["files"] == 3 and model["processing"]["models"] == {"ident": 3}
    assert doc["methods"][1]["processing"] is None
    # outputs: float32 WAV, named after the inputs, peaks above full scale kept
    info = sf.info(keep / "ident" / "c0.wav")
    assert info.subtype == "FLOAT" and info.samplerate == SR
    out0 = _read(keep / "ident" / "c0.wav")
    assert np.abs(out0).max() == pytest.approx(1.5, rel=1e-6)
    np.testing.assert_array_equal(out0, _read(testset / "input" / "c0.wav"))
    assert model["files"][0]["est"] == str(keep / "ident" / "c0.wav")


def test_model_outputs_are_what_gets_scored(testset, tmp_path, capsys):
    """A remover that adds a DC offset must score worse than the input in ESR and L1."""
    offset = save_demucs(tmp_path / "dc.safetensors", name="dc", dc=0.05)
    keep = tmp_path / "kept"
    code, out, err = run(["eval", "--model", offset, "--testset", testset, "--baseline", "input", "-m", METRICS,
                          "--json", "--keep", keep], capsys)
    assert code == 0, err
    scores = _scores(json.loads(out))
    for name in ("c0", "c1", "c2"):
        assert scores["dc"][name]["l1"] > scores["input"][name]["l1"]
        assert scores["dc"][name]["esr"] > scores["input"][name]["esr"]
        est = _read(keep / "dc" / f"{name}.wav")
        tgt = _read(next((testset / "target").glob(f"{name}.*")))
        assert scores["dc"][name]["esr"] == pytest.approx(esr(est, tgt), rel=1e-5)


def test_tables_csv_and_plot_per_method(testset, ident, tmp_path, capsys):
    table, png = tmp_path / "scores.csv", tmp_path / "box.png"
    code, out, err = run(["eval", "--model", ident, "--testset", testset, "--baseline", "-m", "si_sdr,mrstft",
                          "--csv", table, "--plot", png], capsys)
    assert code == 0, err
    lines = out.splitlines()
    rows = [line for line in lines if line.startswith("│ ident") or line.startswith("│ input")]
    assert len(rows) == 6 + 4  # 3 files x 2 methods, 2 metrics x 2 methods
    first = [line.split("│")[1:3] for line in rows[:2]]  # the methods of one file sit next to each other
    assert [(m.strip(), f.strip()) for m, f in first] == [("ident", "c0"), ("input", "c0")]
    assert "ident: processed 3 file(s), 3 s of audio in" in out
    with open(table, newline="") as f:
        records = list(csv.DictReader(f))
    assert [r["method"] for r in records] == ["ident"] * 3 + ["input"] * 3
    assert list(records[0])[:6] == ["method", "name", "est", "ref", "si_sdr", "mrstft"]
    for a, b in zip(records[:3], records[3:]):
        assert a["name"] == b["name"] and float(a["si_sdr"]) == pytest.approx(float(b["si_sdr"]), rel=1e-9)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_effect_model_runs_like_apply_with_knobs(testset, identity_model, tmp_path, capsys):
    code, out, err = run(["eval", "--model", identity_model, "--testset", testset, "--baseline", "-m", METRICS,
                          "--knob", "level=0dB", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["testset"]["task"] == "apply" and doc["testset"]["knobs"] == {"tone": 0.5, "level": 0.0}
    scores = _scores(doc)
    for name, values in scores["input"].items():
        assert scores["identity"][name] == pytest.approx(values, rel=1e-6, abs=1e-9)
    # a copy whose level knob adds its normalised value to the gain: level=12dB (1.0) doubles the output
    from fxnet.checkpoint import load_model, save_model

    net, _ = load_model(identity_model)
    with torch.no_grad():
        net.knob_taps[1, net.hparams["latency"]] = 1.0
    louder = save_model(net, tmp_path / "gain.safetensors", name="gain")
    keep = tmp_path / "kept"
    code, out, err = run(["eval", "--model", louder, "--testset", testset, "-m", METRICS, "--knobs", "0.5,1",
                          "--json", "--keep", keep], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [m["name"] for m in doc["methods"]] == ["gain"]
    assert doc["testset"]["knobs_normalised"] == {"tone": 0.5, "level": 1.0}
    inp = _read(testset / "input" / "c0.wav")
    np.testing.assert_allclose(_read(keep / "gain" / "c0.wav"), 2.0 * inp, atol=1e-6)  # unclipped: peak 3.0
    tgt = _read(testset / "target" / "c0.wav")
    assert _scores(doc)["gain"]["c0"]["esr"] == pytest.approx(esr(2.0 * inp, tgt), rel=1e-5)
    code, _, err = run(["eval", "--model", louder, "--testset", testset, "--knob", "drive=1"], capsys)
    assert code == 1 and "unknown knob 'drive'" in err and err.count("\n") == 1


def test_auto_routes_each_file_like_remove(testset, tmp_path, capsys, monkeypatch):
    """--model auto: the clipped inputs go to the 'declip' model, the others to 'undistort'."""
    import fxnet.restore.pipeline as pipeline

    monkeypatch.setattr(pipeline, "AUTO_CLIPPED", str(save_demucs(tmp_path / "a.safetensors", name="for_clipped")))
    monkeypatch.setattr(pipeline, "AUTO_OTHER", str(save_demucs(tmp_path / "b.safetensors", name="for_other")))
    x, _ = sf.read(testset / "target" / "c0.wav", dtype="float32")
    sf.write(testset / "input" / "clean.wav", x, SR, subtype="FLOAT")  # no plateau: not clipped
    sf.write(testset / "target" / "clean.wav", x, SR, subtype="FLOAT")
    code, out, err = run(["eval", "--model", "auto", "--testset", testset, "-m", "si_sdr", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    (method,) = doc["methods"]
    assert method["name"] == "auto" and doc["testset"]["task"] == "remove"
    assert method["processing"]["models"] == {"for_clipped": 3, "for_other": 1}
    assert {f["name"]: f["scores"]["si_sdr"] > 100 for f in method["files"]} == \
        {"c0": False, "c1": False, "c2": False, "clean": True}


def test_aspade_baseline_on_a_short_clip(tmp_path, ident, capsys):
    """--baseline input,aspade: a 0.2 s tone burst of two sinusoids lightly clipped (20 dB)."""
    from fxnet.effects.clipping import clip_to_input_sdr

    root = tmp_path / "tones"
    (root / "input").mkdir(parents=True)
    (root / "target").mkdir()
    t = np.arange(int(0.2 * SR)) / SR
    fade = np.sin(np.pi / 2 * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.1)) ** 2  # sparse frames: fast A-SPADE
    x = (fade * (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1250 * t + 1))).astype(np.float32)
    sf.write(root / "target" / "tone.wav", x, SR, subtype="FLOAT")
    sf.write(root / "input" / "tone.wav", clip_to_input_sdr(x[None], 20.0)[0], SR, subtype="FLOAT")
    code, out, err = run(["eval", "--model", ident, "--testset", root, "--baseline", "input,aspade", "-m", "si_sdr",
                          "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [m["name"] for m in doc["methods"]] == ["ident", "input", "aspade"]
    assert doc["testset"]["baselines"] == ["input", "aspade"]
    scores = {k: v["tone"]["si_sdr"] for k, v in _scores(doc).items()}
    assert scores["ident"] == pytest.approx(scores["input"], rel=1e-9)
    assert 19.0 < scores["input"] < 23.0 and scores["aspade"] > scores["input"] + 20.0
    assert doc["methods"][2]["processing"]["models"] == {"aspade": 1}


def test_irm_oracle_baseline(testset, ident, tmp_path, capsys):
    """--baseline input,irm: the ideal ratio mask knows the target's magnitudes, so it beats the
    clipped input (10.6 -> 14.8 dB SI-SDR on c0: the input's phase limits it), and its outputs
    are float32 WAVs of the input's length."""
    keep = tmp_path / "kept"
    code, out, err = run(["eval", "--model", ident, "--testset", testset, "--baseline", "input,irm", "-m", "si_sdr",
                          "--json", "--keep", keep], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [m["name"] for m in doc["methods"]] == ["ident", "input", "irm"]
    scores = _scores(doc)
    for name, values in scores["input"].items():
        assert scores["irm"][name]["si_sdr"] > values["si_sdr"] + 3.0
    out0 = _read(keep / "irm" / "c0.wav")
    assert out0.shape == _read(next((testset / "input").glob("c0.*"))).shape
    assert doc["methods"][2]["processing"]["files"] == 3


def test_a_bad_file_is_reported_and_the_rest_scored(testset, ident, capsys):
    (testset / "input" / "bad.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(testset / "target" / "bad.wav", np.zeros(SR, np.float32), SR)
    sf.write(testset / "target" / "lonely.wav", np.zeros(SR, np.float32), SR)
    code, out, err = run(["eval", "--model", ident, "--testset", testset, "--baseline", "-m", "si_sdr", "--json"],
                         capsys)
    assert code == 2
    doc = json.loads(out)
    assert doc["failed"] == 2  # the model could not process it, and the input baseline cannot read it
    model, inp = doc["methods"]
    assert [f["name"] for f in model["files"]] == ["bad", "c0", "c1", "c2"]
    assert model["files"][0]["errors"] and model["files"][0]["errors"][0].startswith("ident: ")
    assert str(testset / "input" / "bad.wav") in model["files"][0]["errors"][0]
    assert all(f["scores"] for f in model["files"][1:]) and model["processing"]["failed"] == 1
    assert model["unpaired"]["references"] == [str(testset / "target" / "lonely.wav")]
    assert f"unpaired {testset / 'target' / 'lonely.wav'}: no input of that name" in err
    code, out, err = run(["eval", "--model", ident, "--testset", testset, "-m", "si_sdr"], capsys)
    assert code == 2 and "1 problem(s):" in err and "failed" in err and "│ c2" in out


def test_usage_errors_are_one_line(testset, ident, identity_model, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "input").mkdir(parents=True)
    (empty / "target").mkdir()
    sf.write(empty / "target" / "a.wav", np.zeros(100, np.float32), SR)
    apart = tmp_path / "apart"
    (apart / "input").mkdir(parents=True)
    (apart / "target").mkdir()
    sf.write(apart / "input" / "a.wav", np.zeros(100, np.float32), SR)
    sf.write(apart / "target" / "b.wav", np.zeros(100, np.float32), SR)
    named_target = save_demucs(tmp_path / "t.safetensors", name="target")  # --keep DIR: outputs in DIR/target/
    cases = [
        (["--model", "no_such_model", "--testset", testset], "unknown model 'no_such_model'"),
        (["--model", tmp_path / "nope.safetensors", "--testset", testset], "no such model file"),
        (["--model", ident, "--testset", tmp_path / "nowhere"], "no such test-set directory"),
        (["--model", ident, "--testset", testset / "input"], f"{testset / 'input' / 'input'}: missing; a test set"),
        (["--model", ident, "--testset", empty], f"{empty / 'input'}: no audio files"),
        (["--model", ident, "--testset", apart], "no audio file names in common"),
        (["--model", ident], "--model and --testset go together"),
        (["--testset", testset], "--model and --testset go together"),
        ([testset / "input", testset / "target", "--baseline"], "--baseline goes with --model"),
        (["--model", ident, "--testset", testset, testset], "give no EST REF paths"),
        (["--model", ident, "--testset", testset, "--baseline", "input,bogus"], "--baseline 'input,bogus': expected"),
        (["--model", ident, "--testset", testset, "--knobs", "0.5"], "removal models have no knobs"),
        (["--model", identity_model, "--testset", testset, "--baseline", "input,aspade"],
         "A-SPADE is a declipper, a baseline for removal models"),
        (["--model", named_target, "--testset", testset, "--keep", testset], "would replace the test set's own files"),
        (["--model", ident, "--testset", testset, "--csv", testset / "target" / "c0.wav"], "refusing to write"),
    ]
    for argv, message in cases:
        code, out, err = run(["eval", *argv, "-m", "si_sdr"], capsys)
        assert code == 1, (argv, err)
        assert err.count("\n") == 1 and message in err and err.startswith("fxnet: error: "), (argv, err)
        assert out == ""
