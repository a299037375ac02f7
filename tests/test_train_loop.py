"""The training loop: convergence, budgets, early stopping, exact resume, NaN handling, metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.signal import lfilter

from fxnet.checkpoint import load_model, read_header
from fxnet.effects import EFFECTS, EffectRef
from fxnet.errors import TrainingError
from fxnet.knobs import KnobSpec
from fxnet.train.loop import TrainConfig, load_state, one_cycle_factor, state_path_for
from fxnet.train.profile import ProfileRequest, profile

# Two linear test effects that the small models represent exactly.
FIXED_KNOBS: tuple[KnobSpec, ...] = ()
TONE_KNOBS = (KnobSpec("tone"),)


def fixed_gain(x, sr, knobs):
    """A knob-less -9.5 dB gain: the 'gain' model is exact with gain_db = -9.5."""
    return (np.asarray(x) * 10.0 ** (-9.5 / 20.0)).astype(np.float32)


def tone(x, sr, knobs):
    """Crossfade from dry (knob 0) to a one-pole low-pass (knob 1): its impulse response is
    linear in the knob, so a 32-tap 'fir' (h0 + knob * W) is exact to within 0.6^32."""
    k = np.broadcast_to(np.asarray(knobs, np.float64), np.shape(x)[:-1] + (1,))
    return ((1 - k) * x + k * lfilter([0.4], [1.0, -0.6], x, axis=-1)).astype(np.float32)


@pytest.fixture(autouse=True)
def test_effects(monkeypatch):
    monkeypatch.setitem(EFFECTS, "fixed", EffectRef(__name__, "fixed_gain", "FIXED_KNOBS", "test gain"))
    monkeypatch.setitem(EFFECTS, "tone", EffectRef(__name__, "tone", "TONE_KNOBS", "test filter"))


def request(tmp_path, *, synth="comp4c", arch="fir", arch_config=None, name="m.safetensors", resume=False,
            **cfg) -> ProfileRequest:
    options = dict(steps=6, checkpoint_every=3, batch_size=8, segment=512, loss="esr+0.5*mrstft")
    options.update(cfg)
    return ProfileRequest(output=tmp_path / name, synth=synth, arch=arch,
                          arch_config={"taps": 16} if arch_config is None and arch == "fir" else (arch_config or {}),
                          pool_clips=8, val_clips=2, threads=1, config=TrainConfig(**options), resume=resume,
                          force=not resume, command="fxnet profile (test)")


def test_gain_model_converges_without_knobs(tmp_path):
    # The gain model is exact for this effect: 1e-4 is 100x below NAM's "great" (0.01) and
    # means a gain error below 0.09 dB.
    res = profile(request(tmp_path, synth="fixed", arch="gain", steps=300, checkpoint_every=150, lr=0.5, loss="esr"))
    assert res.validation.esr < 1e-4
    model, info = load_model(res.path)
    assert model.gain_db.item() == pytest.approx(-9.5, abs=0.09)
    assert info.knobs == [] and len(res.validation.per_setting) == 1


def test_fir_converges_on_a_knob_controlled_filter(tmp_path):
    # From an identity start (val ESR 0.03) a 32-tap FIR learns the knob-dependent low-pass,
    # which it represents exactly: below 1e-3 (10x below NAM's "great") at every setting.
    res = profile(request(tmp_path, synth="tone", arch="fir", arch_config={"taps": 32}, steps=1500,
                          checkpoint_every=500, lr=0.05, weight_decay=0.0, loss="esr"))
    assert res.validation.esr < 1e-3
    assert [row["knobs"]["tone"] for row in res.validation.per_setting] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(row["esr"] < 1e-3 for row in res.validation.per_setting)


def test_resume_continues_exactly(tmp_path):
    straight = profile(request(tmp_path, name="a.safetensors", steps=8, checkpoint_every=4))

    class Interrupt:
        def __call__(self, event):
            if event.kind == "step" and event.step == 4:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        profile(request(tmp_path, name="b.safetensors", steps=8, checkpoint_every=4), on_event=Interrupt())
    _, meta = load_state(state_path_for(tmp_path / "b.safetensors"))
    assert meta["step"] == 4
    resumed = profile(request(tmp_path, name="b.safetensors", steps=8, checkpoint_every=4, resume=True))
    assert resumed.steps == straight.steps == 8
    a, b = load_file(str(straight.state_path)), load_file(str(resumed.state_path))
    assert set(a) == set(b) and any(k.startswith("optim/") for k in a)
    for key in a:  # weights, Adam moments, RNG: bit-identical
        assert torch.equal(a[key], b[key]), key
    wa, wb = load_file(str(straight.path)), load_file(str(resumed.path))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed.best_esr == straight.best_esr
    # the validation history carries over the interruption: same steps, ESRs and mean losses
    ha, hb = straight.training["history"], resumed.training["history"]
    assert [h["step"] for h in hb] == [h["step"] for h in ha] == [4, 8]
    assert [(h["val_esr"], h["train_loss"]) for h in hb] == [(h["val_esr"], h["train_loss"]) for h in ha]
    assert hb[0]["seconds"] < hb[1]["seconds"]


def test_resume_refuses_different_options(tmp_path):
    from fxnet.errors import UsageError

    profile(request(tmp_path, steps=3))
    with pytest.raises(UsageError, match="used lr=0.003, not 0.001"):
        profile(request(tmp_path, steps=6, lr=1e-3, resume=True))
    with pytest.raises(UsageError, match="effect='comp4c', not 'hardclip'"):
        profile(request(tmp_path, synth="hardclip", steps=6, resume=True))


class NaNAt:
    """A loss that is ESR until call ``at``, then NaN."""

    spec = "esr (NaN at a chosen step)"

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, pred, target):
        self.calls += 1
        loss = ((pred - target) ** 2).sum() / (target**2).sum()
        return loss * math.nan if self.calls == self.at else loss


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    req = request(tmp_path, steps=20, checkpoint_every=3)
    with pytest.raises(TrainingError) as e:
        profile(req, loss_fn=NaNAt(8))
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 2
    assert "loss became nan at step 8" in msg and "last good checkpoint (step 6) is kept" in msg
    _, meta = load_state(state_path_for(req.output))
    assert meta["step"] == 6
    info = read_header(req.output)
    assert info.meta["training"]["steps"] == 6
    weights = load_file(str(req.output))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_time_budget_runs_the_one_cycle_on_the_clock(tmp_path):
    res = profile(request(tmp_path, steps=None, seconds=4.0, checkpoint_every=1000))
    assert res.stopped == "seconds" and res.steps > 3
    _, meta = load_state(state_path_for(tmp_path / "m.safetensors"))
    # the schedule finished its annealing when the time ran out, whatever the speed
    assert meta["optimizer"]["param_groups"][0]["lr"] < 0.05 * 3e-3


def test_one_cycle_factor_matches_torch_onecycle():
    """Same curve as torch's OneCycleLR (which ends its warm-up at pct*total - 1)."""
    total = 10001
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, pct_start=0.3)
    for step in range(total):
        if step % 500 == 0:
            assert one_cycle_factor(step / (total - 1), 0.3) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-3)
        opt.step()
        if step < total - 1:
            sched.step()
    assert one_cycle_factor(1.0, 0.3) == pytest.approx(1 / 25 / 1e4)


def test_epochs_budget_and_early_stopping(tmp_path):
    res = profile(request(tmp_path, steps=None, epochs=0.5, checkpoint_every=1000))
    spe = res.training["steps"] / res.training["epochs"]
    assert res.steps == math.ceil(0.5 * spe) and res.stopped == "steps"
    # a learning rate too small to change anything: no validation improves after the first
    res = profile(request(tmp_path, name="es.safetensors", steps=50, checkpoint_every=2, lr=1e-12, patience=2))
    assert res.stopped == "early stopping" and res.steps == 6 and res.best_step == 2


def test_plateau_schedule_and_remove_task(tmp_path):
    res = profile(request(tmp_path, synth="hardclip", steps=4, checkpoint_every=2, schedule="plateau",
                          loss="sisdr+esr"))
    info = read_header(res.path)
    assert info.task == "apply" and res.training["optimizer"]["schedule"] == "plateau"
    req = request(tmp_path, synth="hardclip", name="r.safetensors", steps=2, checkpoint_every=2)
    req.direction = "remove"
    assert read_header(profile(req).path).task == "remove"


def test_training_summary_in_the_model_file(tmp_path):
    losses = {}

    def record(event):
        if event.kind == "step" and event.loss is not None:
            losses[event.step] = event.loss

    res = profile(request(tmp_path, steps=5, checkpoint_every=3), on_event=record)
    training = read_header(res.path).meta["training"]
    # validation history: at the checkpoint (step 3) and at the end (step 5), each with the
    # mean training loss since the previous validation and the ESR the validation found
    history = training["history"]
    assert [h["step"] for h in history] == [3, 5]
    assert history[0]["train_loss"] == pytest.approx(np.mean([losses[s] for s in (1, 2, 3)]))
    assert history[1]["train_loss"] == pytest.approx(np.mean([losses[s] for s in (4, 5)]))
    assert 0 < history[0]["seconds"] < history[1]["seconds"] <= training["wall_seconds"] + 0.01
    assert min(h["val_esr"] for h in history) == pytest.approx(training["validation"]["esr"])
    assert training["data"]["source"] == "synth" and training["data"]["effect"] == "comp4c"
    assert training["data"]["seed"] == 0
    assert training["steps"] == 5 and training["wall_seconds"] > 0
    assert training["hardware"]["device"] == "cpu" and training["hardware"]["cpu"]
    assert training["torch_version"] == torch.__version__
    assert training["loss"] == "esr+0.5*mrstft" and training["command"] == "fxnet profile (test)"
    table = training["validation"]["per_setting"]
    assert len(table) == 16 and set(table[0]["knobs"]) == {"threshold", "ratio", "attack", "release"}
    assert table[0]["physical"]["threshold"] == -30.0
    assert training["validation"]["esr"] == pytest.approx(np.mean([r["esr"] for r in table]))
    assert training["validation"]["verdict"] in ("great", "not bad", "might sound ok", "poor")


def test_validation_esr_in_db_weighs_every_setting_alike():
    from fxnet.train.loop import ValidationResult

    res = ValidationResult(0.0, [{"esr": 1.0}, {"esr": 0.01}, {"esr": 0.001}])
    assert res.esr_db == pytest.approx((0.0 - 20.0 - 30.0) / 3)


@pytest.mark.parametrize("loss,selected", [("sdr", "esr_db"), ("sisdr+sdr", "esr_db"), ("esr+sdr", "esr")])
def test_runs_with_a_loss_in_db_keep_the_best_mean_db_checkpoint(tmp_path, loss, selected):
    res = profile(request(tmp_path, synth="tone", steps=8, checkpoint_every=1, lr=0.05, loss=loss))
    training = res.training
    assert training["selected_by"] == selected
    history = training["history"]
    key = "val_esr_db" if selected == "esr_db" else "val_esr"
    assert res.best_step == min(history, key=lambda h: h[key])["step"]
    best = next(h for h in history if h["step"] == res.best_step)
    assert res.best_esr == pytest.approx(best["val_esr"])
    if selected == "esr_db":
        per = [row["esr"] for row in training["validation"]["per_setting"]]
        assert best["val_esr_db"] == pytest.approx(np.mean(10 * np.log10(per)), abs=1e-6)
