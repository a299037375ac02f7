"""`fxnet profile` end to end: folders written with soundfile, then `fxnet apply` with the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from fxnet.checkpoint import read_header
from clihelp import run  # tests/ is on sys.path (pytest rootdir-relative import)
from fxnet.effects import get_effect
from fxnet.synth import generate

SR = 44100
FAST = ["--arch", "fir", "--arch-config", "taps=16", "--segment", "1024", "--batch-size", "8", "--threads", "1",
        "--synth-pool", "8", "--val-clips", "1"]



@pytest.fixture
def folders(tmp_path):
    """dry/{a,b}.wav and wet/ with comp4c at two thresholds each, 20 samples late, and knobs.csv."""
    comp = get_effect("comp4c")
    threshold = comp.knobs[0]
    rows = ["file,dry,threshold"]
    (tmp_path / "dry").mkdir()
    (tmp_path / "wet").mkdir()
    clips = generate(2, int(1.5 * SR), SR, seed=7, families=["string", "drums"])
    for name, clip in zip("ab", clips):
        clip = (0.8 / np.abs(clip).max() * clip).astype(np.float32)
        sf.write(tmp_path / "dry" / f"{name}.wav", clip, SR, subtype="PCM_24")
        for db in (-24.0, -6.0):
            wet = comp(clip, SR, [threshold.to_normalised(db), 0.8, 0.2, 0.5])
            wet = np.concatenate([np.zeros(20, np.float32), wet])  # interface latency
            wet_name = f"{name}_{int(-db)}.wav"
            sf.write(tmp_path / "wet" / wet_name, wet, SR, subtype="PCM_24")
            rows.append(f"{wet_name},{name}.wav,{db}")
    (tmp_path / "wet" / "knobs.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_profile_folders_then_apply(folders, capsys):
    model = folders / "comp.safetensors"
    code, out, err = run(["profile", folders / "dry", folders / "wet", "-o", model, "--steps", "6",
                          "--checkpoint-every", "3", "--knob-range", "threshold=-30:0:dB", *FAST], capsys)
    assert code == 0, err
    assert out == ""
    assert err.count("lag 20 samples (0.45 ms)") == 4  # the latency of every pair is reported
    info = read_header(model)
    assert info.task == "apply"
    assert [(k.name, k.minimum, k.maximum, k.unit) for k in info.knobs] == [("threshold", -30.0, 0.0, "dB")]
    training = info.meta["training"]
    assert training["data"]["source"] == "folders" and training["data"]["files"] == 4
    assert {p["lag_samples"] for p in training["data"]["pairs"]} == {20}
    assert training["steps"] == 6 and "--knob-range threshold=-30:0:dB" in training["command"]
    table = training["validation"]["per_setting"]
    assert sorted(r["physical"]["threshold"] for r in table) == [-24.0, -6.0]

    out_wav = folders / "out.wav"
    code, _, err = run(["apply", folders / "dry" / "a.wav", "-o", out_wav, "--model", model,
                        "--knob", "threshold=-20dB"], capsys)
    assert code == 0, err
    assert sf.info(out_wav).frames == sf.info(folders / "dry" / "a.wav").frames


def test_profile_json_summary_and_resume(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    base = ["profile", "--synth", "hardclip", "-o", model, "--checkpoint-every", "2", "--json", "-q", *FAST]
    code, out, err = run([*base, "--steps", "4", "--schedule", "plateau"], capsys)
    assert code == 0, err
    assert err == ""  # -q
    summary = json.loads(out)
    assert summary["steps"] == 4 and summary["training"]["data"]["effect"] == "hardclip"
    code, out, err = run([*base, "--steps", "6", "--schedule", "plateau", "--resume"], capsys)
    assert code == 0, err
    assert json.loads(out)["steps"] == 6
    # a 1cycle run's length is part of its schedule: a longer budget cannot continue it
    code, out, err = run([*base, "--steps", "4", "--force"], capsys)
    assert code == 0, err
    code, _, err = run([*base, "--steps", "8", "--resume"], capsys)
    assert code == 1 and "1cycle schedule was fixed at 4 steps" in err


def test_divergence_exits_2_with_one_line(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    code, _, err = run(["profile", "--synth", "comp4c", "-o", model, "--steps", "20", "--checkpoint-every", "1",
                        "--lr", "1e30", "-q", *FAST], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fxnet: error: training diverged:")
    assert "try a lower --lr" in lines[0] and "is kept in" in lines[0]
    assert read_header(model).meta["training"]["steps"] >= 1  # the last good checkpoint is still usable


@pytest.mark.parametrize("argv,message", [
    (["--synth", "nope"], "unknown effect 'nope'"),
    (["--synth", "comp4c", "--loss", "esr+bogus"], "cannot read term 'bogus'"),
    (["--synth", "comp4c", "--arch", "nope"], "unknown architecture 'nope'"),
    (["--synth", "comp4c", "--arch", "fir", "--arch-config", "taps=0"], "--arch-config"),
    (["--synth", "comp4c", "--knob-range", "x=0:1"], "--knob-range is for recorded data"),
    (["--synth", "comp4c", "--direction", "sideways"], "--direction must be"),
    (["--synth", "comp4c", "--batch-size", "0"], "--batch-size"),
    ([], "give either DRY_DIR WET_DIR or --synth EFFECT"),
])
def test_usage_errors_exit_1_with_one_line(tmp_path, capsys, argv, message):
    arch = [] if "--arch" in argv else ["--arch", "fir"]
    code, _, err = run(["profile", *argv, *arch, "-o", tmp_path / "m.safetensors", "--steps", "1"], capsys)
    assert code == 1, err
    assert message in err and len(err.strip().splitlines()) == 1


def test_existing_output_needs_force(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    code, _, err = run(["profile", "--synth", "comp4c", "-o", model, "--steps", "1", *FAST], capsys)
    assert code == 2 and "exists; pass --force" in err


def test_bad_pair_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "dry").mkdir()
    (tmp_path / "wet").mkdir()
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.3
    sf.write(tmp_path / "dry" / "a.wav", x, SR)
    sf.write(tmp_path / "wet" / "a.wav", x * 0.5, 48000)
    code, _, err = run(["profile", tmp_path / "dry", tmp_path / "wet", "-o", tmp_path / "m.safetensors",
                        "--steps", "1", *FAST], capsys)
    assert code == 2
    assert "wet/a.wav: sample rate 48000 Hz differs from dry file" in err
    assert not (tmp_path / "m.safetensors").exists()


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_init_fine_tunes_a_model_and_records_where_it_started(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    common = ["--synth", "hardclip", "--checkpoint-every", "2", "-q", "--segment", "1024", "--batch-size", "8",
              "--threads", "1", "--synth-pool", "8", "--val-clips", "1"]
    code, _, err = run(["profile", *common, "--arch", "fir", "--arch-config", "taps=16", "--steps", "4",
                        "-o", base], capsys)
    assert code == 0, err
    tuned = tmp_path / "tuned.safetensors"
    # no --arch: the architecture, its settings and the weights come from --init
    code, _, err = run(["profile", *common, "--init", base, "--steps", "2", "--lr", "1e-3", "-o", tuned], capsys)
    assert code == 0, err
    info = read_header(tuned)
    assert info.model_config["arch"] == "fir" and info.model_config["taps"] == 16
    init = info.meta["training"]["init"]
    assert init["model"] == str(base) and init["steps"] == 4 and len(init["sha256"]) == 64
    before, after = _weights(base), _weights(tuned)
    assert before.keys() == after.keys()
    # the run continued from the base weights: two small steps move them a little, not back to a fresh init
    fresh = tmp_path / "fresh.safetensors"
    code, _, err = run(["profile", *common, "--arch", "fir", "--arch-config", "taps=16", "--steps", "2",
                        "--lr", "1e-3", "--seed", "5", "-o", fresh], capsys)
    assert code == 0, err
    dist = lambda a, b: sum(float((a[k] - b[k]).norm()) for k in a)  # noqa: E731
    assert dist(after, before) < 0.5 * dist(_weights(fresh), before)


@pytest.mark.parametrize("extra,message", [
    (["--direction", "remove"], "is a model for 'apply', and this run trains --direction remove"),
    (["--arch", "tcn"], "is a 'fir' model, not --arch tcn"),
    (["--arch-config", "taps=32"], "does not fit its weights"),
    (["--sample-rate", "22050"], "runs at 44100 Hz, not --sample-rate 22050"),
])
def test_init_mismatches_are_one_line_usage_errors(tmp_path, capsys, extra, message):
    base = tmp_path / "base.safetensors"
    code, _, err = run(["profile", "--synth", "hardclip", "-o", base, "--steps", "1", "-q", *FAST], capsys)
    assert code == 0, err
    code, _, err = run(["profile", "--synth", "hardclip", "--init", base, *extra, "-o", tmp_path / "t.safetensors",
                        "--steps", "1", "-q", "--segment", "1024", "--threads", "1"], capsys)
    assert code == 1, err
    assert message in err and len(err.strip().splitlines()) == 1


def test_init_with_another_effects_knobs_is_refused(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    code, _, err = run(["profile", "--synth", "hardclip", "-o", base, "--steps", "1", "-q", *FAST], capsys)
    assert code == 0, err
    code, _, err = run(["profile", "--synth", "comp4c", "--init", base, "-o", tmp_path / "t.safetensors",
                        "--steps", "1", "-q", "--segment", "1024", "--threads", "1"], capsys)
    assert code == 1 and "names and ranges must match" in err, err
