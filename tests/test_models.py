"""The model contract, for every architecture: shapes, chunk invariance through the
streaming engine, knob sensitivity, parameter counts, checkpoint round trips and
trainability; plus golden checks of SignalTrain's DFT layers and the TCN's algebra."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fxnet.checkpoint import load_model, save_model
from fxnet.engine import process_tensor
from fxnet.models import available, build
from fxnet.models.signaltrain import SignalTrain, _frames
from fxnet.models.tcn import TCN

SR = 44100
KNOBS = [{"name": "drive"}, {"name": "tone", "minimum": -12.0, "maximum": 12.0, "unit": "dB"}]

#: id -> model config (without sample rate and knobs). Small where the size is irrelevant.
CONFIGS = {
    "gain": {"arch": "gain"},
    "fir": {"arch": "fir", "taps": 33, "latency": 4},
    "signaltrain": {"arch": "signaltrain"},
    "tcn": {"arch": "tcn", "channels": 16},
    "tcn-noncausal-tanh": {"arch": "tcn", "channels": 8, "blocks": 3, "kernel": 4, "causal": False,
                           "output": "tanh", "input_skip": False},
    "rnn": {"arch": "rnn", "hidden": 16, "warmup": 2048, "segment": 1024},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tests run many small ops, and with two threads every op
    waits for the second thread whenever another process holds a core (100x slower on a
    shared 2-core machine). Results do not depend on the thread count."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def make(name: str, seed: int = 0, knobs=KNOBS):
    """A freshly initialised model in eval mode. Zero-initialised knob weights (gain/fir)
    and the untouched BatchNorm statistics (tcn) are randomised so that every code path
    does real work, as in a trained model."""
    torch.manual_seed(seed)
    model = build({**CONFIGS[name], "sample_rate": SR, "knobs": knobs})
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname in ("knob_db", "knob_taps"):
                p.normal_(0, 0.3)
        for mname, buf in model.named_buffers():
            if mname.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif mname.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return model.eval()


def run_whole(model, audio: torch.Tensor, knobs) -> torch.Tensor:
    """One model call over the whole (C, T) signal with zero padding on both sides."""
    g = model.geometry
    channels, length = audio.shape
    n = math.ceil((length + g.latency) / g.multiple) * g.multiple
    x = torch.zeros(channels, 1, g.left_context + n + g.right_context)
    x[:, 0, g.left_context : g.left_context + length] = audio
    with torch.inference_mode():
        y = model(x, torch.tensor([list(knobs)] * channels, dtype=torch.float32))
    return y[:, 0, g.latency : g.latency + length]


def random_audio(seconds: float = 3.0, channels: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(channels, int(seconds * SR), generator=g)


def test_registry_lists_the_architectures():
    assert {"gain", "fir", "signaltrain", "tcn", "rnn"} <= set(available())


# -- (a) shapes ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_output_has_n_samples(name):
    model = make(name)
    g = model.geometry
    for k in (1, 2, 5):
        n = k * g.multiple if g.multiple > 1 else (1, 7, 1000)[k % 3]
        x = torch.randn(3, 1, g.left_context + n + g.right_context)
        with torch.inference_mode():
            y = model(x, torch.rand(3, model.num_knobs))
        assert y.shape == (3, 1, n)
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["signaltrain", "rnn"])
def test_output_length_not_a_multiple_is_refused(name):
    model = make(name)
    g = model.geometry
    x = torch.randn(1, 1, g.left_context + g.multiple + 1)
    with pytest.raises(ValueError, match="multiple"):
        model(x, torch.rand(1, model.num_knobs))


# -- (b) chunked == whole file --------------------------------------------------------------
#: (chunk in units of the model's multiple or in samples, batch size, block frames)
ENGINE_SETTINGS = [(1, 1, 4096), (3, 2, 10007), (5, 3, 65536)]


@pytest.mark.parametrize("name", CONFIGS)
def test_engine_matches_whole_file(name):
    model = make(name)
    audio = random_audio()
    knobs = [0.3, 0.8]
    expected = run_whole(model, audio, knobs)
    g = model.geometry
    for units, batch, block in ENGINE_SETTINGS:
        chunk = units * g.multiple if g.multiple > 1 else units * 4099
        geometry = g.with_overrides(chunk=chunk)
        y = process_tensor(model, audio, knobs=knobs, geometry=geometry, block_frames=block, batch_size=batch)
        assert y.shape == audio.shape
        torch.testing.assert_close(y, expected, atol=2e-5, rtol=0)


def test_rnn_without_segments_converges_after_warmup():
    """segment=None runs each chunk as one sequence from a zero state ``warmup`` samples
    before it: not exactly chunk-invariant, but the state forgets its start."""
    torch.manual_seed(0)
    model = build({"arch": "rnn", "sample_rate": SR, "knobs": KNOBS, "hidden": 16, "warmup": 4096,
                   "segment": None}).eval()
    audio = random_audio(seconds=1.5)
    expected = run_whole(model, audio, [0.3, 0.8])
    y = process_tensor(model, audio, knobs=[0.3, 0.8], geometry=model.geometry.with_overrides(chunk=5000),
                       batch_size=3)
    assert (y - expected).abs().max() < 1e-4


# -- (c) knobs ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_knobs_change_the_output(name):
    model = make(name)
    audio = random_audio(seconds=0.5, channels=1)
    a = run_whole(model, audio, [0.1, 0.9])
    b = run_whole(model, audio, [0.9, 0.1])
    assert (a - b).abs().max() > 1e-3
    same = run_whole(model, audio, [0.1, 0.9])
    torch.testing.assert_close(a, same, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["signaltrain", "tcn", "rnn"])
def test_per_item_knobs_match_single_item_runs(name):
    """Rows with different knobs in one batch give what each row gives alone (the TCN
    folds BatchNorm and FiLM into its convolutions only when all rows share knobs)."""
    model = make(name)
    g = model.geometry
    n = 4 * g.multiple if g.multiple > 1 else 3000
    x = torch.randn(2, 1, g.left_context + n + g.right_context)
    knobs = torch.tensor([[0.1, 0.9], [0.7, 0.2]])
    with torch.inference_mode():
        both = model(x, knobs)
        alone = torch.cat([model(x[i : i + 1], knobs[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(both, alone, atol=2e-6, rtol=0)


def test_knobless_models_work():
    for name in ("signaltrain", "tcn", "rnn"):
        model = make(name, knobs=[])
        g = model.geometry
        n = g.multiple if g.multiple > 1 else 100
        with torch.inference_mode():
            y = model(torch.randn(2, 1, g.left_context + n + g.right_context), torch.zeros(2, 0))
        assert y.shape == (2, 1, n)


# -- (d) sizes ------------------------------------------------------------------------------
def _params(config) -> int:
    model = build({**config, "sample_rate": SR, "knobs": KNOBS})
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts():
    # SignalTrain: ~4.2 M in the paper's layout, almost all in the DFT layers; the compact
    # layout drops the 511 discarded analysis bins and the redundant mirrored synthesis.
    assert _params({"arch": "signaltrain", "dft_layout": "reference"}) == pytest.approx(4.21e6, rel=0.01)
    assert _params({"arch": "signaltrain"}) == pytest.approx(2.12e6, rel=0.01)
    # micro-TCN (2 knobs, 32 channels): TCN-100 ~26 k, TCN-300 ~51 k parameters.
    assert _params({"arch": "tcn", "channels": 32, "kernel": 5}) == pytest.approx(26e3, rel=0.03)
    assert _params({"arch": "tcn", "channels": 32, "kernel": 13}) == pytest.approx(51e3, rel=0.03)
    # LSTM(3 -> 32) + Linear(32 -> 1)
    assert _params({"arch": "rnn", "hidden": 32}) == 4 * 32 * (3 + 32) + 8 * 32 + 33


def test_receptive_fields():
    def rf(**kw):
        return build({"arch": "tcn", "sample_rate": SR, **kw}).receptive_field

    assert rf(blocks=4, dilation_growth=10, kernel=5) == 4445  # TCN-100
    assert rf(blocks=4, dilation_growth=10, kernel=13) == 13333  # TCN-300
    assert rf(blocks=10, dilation_growth=2, kernel=15) == 14323  # TCN-324
    g = build({"arch": "tcn", "sample_rate": SR, "kernel": 5}).geometry
    assert (g.left_context, g.right_context, g.multiple) == (4444, 0, 1)
    g = build({"arch": "tcn", "sample_rate": SR, "kernel": 5, "causal": False}).geometry
    assert (g.left_context, g.right_context) == (2222, 2222)


# -- (e) checkpoints ------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_save_load_round_trip(name, tmp_path):
    model = make(name)
    path = save_model(model, tmp_path / f"{name}.safetensors")
    loaded, info = load_model(path)
    assert info.model_config == model.config()
    assert loaded.geometry == model.geometry
    g = model.geometry
    n = 2 * g.multiple if g.multiple > 1 else 500
    x = torch.randn(2, 1, g.left_context + n + g.right_context)
    k = torch.rand(2, model.num_knobs)
    with torch.inference_mode():
        assert torch.equal(model(x, k), loaded(x, k))


# -- (f) training ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_gradients_reach_every_parameter_and_loss_falls(name):
    model = make(name).train()
    g = model.geometry
    n = 2 * g.multiple if g.multiple > 1 else 2048
    gen = torch.Generator().manual_seed(2)
    x = 0.3 * torch.randn(4, 1, g.left_context + n + g.right_context, generator=gen)
    knobs = torch.rand(4, model.num_knobs, generator=gen)
    target = 0.5 * x[..., g.left_context : g.left_context + n]  # a fixed -6 dB gain
    target = F.pad(target, (g.latency, 0))[..., :n]  # a model with latency outputs late
    opt = torch.optim.Adam(model.parameters(), lr=0.1 if name == "gain" else 3e-3)  # gain is in dB
    losses = []
    for step in range(20):
        opt.zero_grad()
        loss = (model(x, knobs) - target).pow(2).mean()
        loss.backward()
        if step == 0:
            for pname, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, pname
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0], losses


def test_signaltrain_frozen_dft_gets_no_gradient():
    model = build({"arch": "signaltrain", "sample_rate": SR, "freeze_dft": True})
    x = torch.randn(1, 1, 6144 + 2048)
    model(x, torch.zeros(1, 0)).pow(2).mean().backward()
    assert model.analysis.grad is None and model.synthesis.grad is None
    assert model.mag_ae.decoder[-1].weight.grad is not None


def test_signaltrain_gradients_are_finite_on_silence():
    """Zero padding makes exact-zero DFT bins; |X| and angle(X) must not give NaN grads."""
    model = build({"arch": "signaltrain", "sample_rate": SR, "knobs": KNOBS})
    x = torch.zeros(1, 1, 6144 + 2048)
    x[..., -100:] = 0.1
    model(x, torch.rand(1, 2)).pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# -- golden checks --------------------------------------------------------------------------
def test_signaltrain_frame_arithmetic():
    assert _frames(8192, 2048, 1024, 384, 9) == (25, 16, 1024)  # 25 frames in, last 9 out
    assert _frames(8192, 2048, 1024, 384, 8) == (25, 17, 640)  # 8 is the least that covers
    with pytest.raises(ValueError, match="need the last 8"):
        _frames(8192, 2048, 1024, 384, 7)
    model = SignalTrain(sample_rate=SR)
    assert model.frames_in == 25 and model.mag_ae.encoder[0][0].in_features == 25
    assert model.mag_ae.decoder[-1].out_features == 9


@pytest.mark.parametrize("layout", ["compact", "reference"])
def test_signaltrain_dft_layers_reconstruct_the_input(layout):
    """With the autoencoders passing magnitude and phase through unchanged (ELU(1) = 1,
    phase + 0), analysis then least-squares synthesis is the identity on the output."""
    model = SignalTrain(sample_rate=SR, dft_layout=layout, final_skip=False)
    with torch.no_grad():
        for ae, bias in ((model.mag_ae, 1.0), (model.phase_ae, 0.0)):
            ae.decoder[-1].weight.zero_()
            ae.decoder[-1].bias.fill_(bias)
    x = torch.randn(2, 1, 6144 + 3 * 2048)
    with torch.inference_mode():
        y = model(x, torch.zeros(2, 0))
    torch.testing.assert_close(y, x[..., 6144:], atol=1e-5, rtol=0)


def test_signaltrain_layouts_agree_at_initialisation():
    torch.manual_seed(3)
    compact = SignalTrain(sample_rate=SR, knobs=KNOBS)
    torch.manual_seed(3)
    reference = SignalTrain(sample_rate=SR, knobs=KNOBS, dft_layout="reference")
    x = torch.randn(2, 1, 6144 + 2 * 2048)
    k = torch.rand(2, 2)
    with torch.inference_mode():
        torch.testing.assert_close(compact(x, k), reference(x, k), atol=1e-5, rtol=0)


def _naive_tcn(model: TCN, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
    """The micro-TCN written plainly in 1-D, BatchNorm from its running statistics."""
    h, n_out = x, x.shape[-1] - model.receptive_field + 1
    cond = model.cond(knobs) if model.cond is not None else torch.zeros(len(x), 32)
    film = model.film(cond).reshape(len(x), len(model.blocks), 2, -1)
    for i, block in enumerate(model.blocks):
        y = F.conv1d(h, block.conv.weight, dilation=block.dilation)
        y = F.batch_norm(y, block.norm.running_mean, block.norm.running_var, eps=block.norm.eps)
        y = y * (1 + film[:, i, 0, :, None]) + film[:, i, 1, :, None]
        y = F.prelu(y, block.act.weight)
        h = y + h[..., block.offset : block.offset + y.shape[-1]] * block.res_weight[:, :, 0]
    y = F.conv1d(h, model.head.weight, model.head.bias)
    if model.hparams["output"] == "tanh":
        y = torch.tanh(y)
    if model.hparams["input_skip"]:
        left = model.geometry.left_context
        y = y + x[..., left : left + n_out]
    return y


@pytest.mark.parametrize("name", ["tcn", "tcn-noncausal-tanh"])
def test_tcn_matches_a_plain_implementation(name):
    model = make(name)
    x = torch.randn(3, 1, model.receptive_field + 999)
    for knobs in (torch.rand(3, 2), torch.tensor([[0.4, 0.6]] * 3)):  # per-row and folded paths
        with torch.inference_mode():
            torch.testing.assert_close(model(x, knobs), _naive_tcn(model, x, knobs), atol=2e-5, rtol=1e-5)


def test_tcn_is_causal():
    model = make("tcn")
    x = torch.randn(1, 1, model.receptive_field + 2000)
    x2 = x.clone()
    x2[..., model.receptive_field - 1 + 1500] += 1.0  # perturb the input of output 1500
    k = torch.rand(1, 2)
    with torch.inference_mode():
        diff = (model(x, k) - model(x2, k)).abs()[0, 0]
    assert diff[:1500].max() == 0
    assert diff[1500] > 0
