"""The waveshaper architecture: its DC blocker is the one-pole recursion it claims to be,
chunked output equals whole-file output, and it learns SoX's overdrive quickly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from fxnet.effects import get_effect
from fxnet.engine import process_tensor
from fxnet.models import build

SR = 44100
KNOBS = [{"name": "gain_db", "minimum": 0.0, "maximum": 50.0, "unit": "dB"},
         {"name": "colour", "minimum": 0.0, "maximum": 100.0, "unit": "%"}]


def model(**config):
    torch.manual_seed(0)
    return build({"arch": "waveshaper", "sample_rate": SR, "knobs": KNOBS, **config}).eval()


def test_dc_blocker_is_the_one_pole_recursion():
    m = model(taps=4096, pole=0.99)
    x = np.random.default_rng(0).standard_normal(3000)
    h = m.dc_blocker().detach().double().numpy()
    fir = np.convolve(x, h)[: len(x)]
    iir = scipy.signal.lfilter([1.0, -1.0], [1.0, -0.99], x)
    np.testing.assert_allclose(fir, iir, atol=1e-4)  # 0.99^4096: the truncated tail is ~1e-18


@pytest.mark.parametrize("channels", [1, 2])
def test_chunked_equals_whole_and_keeps_shape(channels):
    m = model(chunk=4096)
    x = torch.randn(channels, 20000) * 0.3
    chunked = process_tensor(m, x, knobs=[0.6, 0.3])
    with torch.inference_mode():
        whole = m(torch.nn.functional.pad(x, (m.hparams["taps"] - 1, 0))[None], torch.tensor([[0.6, 0.3]]))[0]
    assert chunked.shape == x.shape
    torch.testing.assert_close(chunked, whole, atol=2e-6, rtol=0)


def test_learns_sox_overdrive_at_one_setting():
    """150 Adam steps on low-passed noise through SoX's overdrive (20 dB, colour 20): the
    ESR falls from about 0.9 (the untrained model) to below 0.1."""
    torch.set_num_threads(1)
    m = model(taps=2048).train()
    effect = get_effect("overdrive")
    knobs = [0.4, 0.2]
    rng = np.random.default_rng(1)
    x = (scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal((8, 4096 + 2047))) * 0.02).astype(np.float32)
    y = torch.from_numpy(np.stack([effect(row, SR, knobs) for row in x])[:, 2047:])[:, None]
    xt = torch.from_numpy(x)[:, None]
    k = torch.tensor([knobs] * 8)

    def esr() -> float:
        with torch.no_grad():
            return float(((m(xt, k) - y) ** 2).sum() / (y**2).sum())

    before = esr()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        loss = ((m(xt, k) - y) ** 2).sum() / (y**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = esr()
    assert after < 0.1 < 0.5 < before, (before, after)


def test_inference_table_matches_the_per_sample_curve():
    """The bundled overdrive model, knob corners and centre, loud and quiet rows: the
    table look-up used at inference differs from evaluating the MLP at every sample by
    far less than the model's own error against SoX (ESR ~1e-2); training (gradients on)
    evaluates the MLP itself."""
    from fxnet.checkpoint import load_model
    from fxnet.registry import resolve_model

    m, _ = load_model(resolve_model("overdrive"))
    m.eval()
    assert m.hparams["lut"] == 4096
    x = torch.randn(3, 1, 20000) * torch.tensor([0.5, 0.05, 0.002])[:, None, None]
    for knobs in ([0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]):
        k = torch.tensor([knobs] * 3)
        with torch.inference_mode():
            table = m(x, k)
            m.hparams["lut"] = 0
            exact = m(x, k)
            m.hparams["lut"] = 4096
        assert (table - exact).abs().max() <= 1e-5 * exact.abs().max()
        assert float(((table - exact) ** 2).sum() / (exact**2).sum()) < 1e-9
    xg = x[:1, :, :9000].clone()
    with torch.enable_grad():
        direct = m(xg, k[:1])
    m.hparams["lut"] = 0
    with torch.no_grad():
        torch.testing.assert_close(direct.detach(), m(xg, k[:1]), rtol=0, atol=0)
    m.hparams["lut"] = 4096
