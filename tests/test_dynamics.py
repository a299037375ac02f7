"""The dynamics (gain-curve) architecture: exact chunk invariance, identity at
initialisation, causality, and that it can learn a compressor's gain behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from fxnet.engine import process_tensor
from fxnet.models import build

KNOBS = [{"name": "threshold", "minimum": -30, "maximum": 0, "unit": "dB"}, {"name": "ratio", "minimum": 1, "maximum": 5}]
CONFIGS = {
    "tcn": dict(core="tcn", channels=8, layers=6, chunk=4096),
    "tcn-hop32": dict(core="tcn", channels=8, layers=5, hop=32, chunk=4096),
    "tcn-samples-depth": dict(core="tcn", channels=8, layers=5, hop=8, chunk=4096, features="samples", depth=True),
    "lstm": dict(core="lstm", channels=8, warmup=1024, segment=1024, chunk=4096),
    "gru": dict(core="gru", channels=8, warmup=512, segment=2048, chunk=4096),
}


def _model(name: str, randomise: bool = True):
    torch.manual_seed(0)
    m = build({"arch": "dynamics", "sample_rate": 44100, "knobs": KNOBS, **CONFIGS[name]}).eval()
    if randomise:
        with torch.no_grad():
            m.out.weight.normal_(0, 0.2)
    return m


def _whole(model, x, knobs):
    g = model.geometry
    n = x.shape[-1]
    total = math.ceil(n / g.multiple) * g.multiple
    xp = torch.nn.functional.pad(x, (g.left_context, total - n))[None]
    with torch.inference_mode():
        return model(xp, torch.tensor([knobs]))[0, :, :n]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_chunked_equals_whole_file(name):
    model = _model(name)
    x = 0.3 * torch.randn(1, 30000, generator=torch.Generator().manual_seed(1))
    for block, batch in [(777, 1), (5000, 3)]:
        y = process_tensor(model, x, knobs=[0.3, 0.6], block_frames=block, batch_size=batch)
        torch.testing.assert_close(y, _whole(model, x, [0.3, 0.6]), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_untrained_model_is_identity_and_knobs_matter_once_trained(name):
    x = 0.3 * torch.randn(1, 9000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(process_tensor(_model(name, randomise=False), x, knobs=[0.5, 0.5]), x)
    model = _model(name)
    with torch.no_grad():
        model.inp.weight.normal_(0, 1.0)
    a = process_tensor(model, x, knobs=[0.0, 0.0])
    b = process_tensor(model, x, knobs=[1.0, 1.0])
    assert (a - b).abs().max() > 1e-3


def test_causal_up_to_one_hop():
    """Changing the input at sample t changes no output before t's frame."""
    model = _model("tcn")
    hop = model.hparams["hop"]
    x = 0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(3))
    x2 = x.clone()
    t = 5000
    x2[0, t:] += 0.5
    y1, y2 = process_tensor(model, x, knobs=[0.5, 0.5]), process_tensor(model, x2, knobs=[0.5, 0.5])
    first_change = int(torch.nonzero((y1 - y2).abs()[0] > 0)[0])
    assert t - hop < first_change <= t


def test_receptive_field_declared_as_left_context():
    model = _model("tcn")
    assert model.receptive_frames == 2**7 - 1  # 6 layers, kernel 3, dilations 1..32
    assert model.geometry.left_context == model.receptive_frames * model.hparams["hop"]
    assert model.geometry.multiple == model.hparams["hop"]


def test_learns_a_static_compressor():
    """A 4:1 compressor above -20 dBFS with instant gain: the model's natural form."""
    torch.manual_seed(0)
    model = build({"arch": "dynamics", "sample_rate": 8000, "channels": 16, "layers": 3, "chunk": 2048})
    left = model.geometry.left_context
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(4)

    def batch():
        level = 10 ** (torch.empty(16, 1).uniform_(-40, 0, generator=g) / 20)
        tone = torch.sin(torch.cumsum(torch.full((16, left + 2048), 2 * math.pi * 220 / 8000), -1))
        x = (level * tone)[:, None, :]
        env_db = 20 * torch.log10(level)
        gain_db = torch.where(env_db > -20, (-20 - env_db) * (1 - 1 / 4), torch.zeros_like(env_db))
        return x, x[..., left:] * 10 ** (gain_db[:, :, None] / 20)

    for _ in range(300):
        x, y = batch()
        loss = ((model(x, torch.zeros(16, 0)) - y) ** 2).sum() / (y**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = batch()
    with torch.no_grad():
        esr = float(((model(x, torch.zeros(16, 0)) - y) ** 2).sum() / (y**2).sum())
    assert esr < 1e-3
