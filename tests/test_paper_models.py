"""The spectral and convolutional-recurrent removers paper 001 compares: Open-Unmix (and
its ideal-ratio-mask oracle) and CRAFx. Small configurations keep every test to seconds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from fxnet.checkpoint import load_model, save_model
from fxnet.engine import process_tensor
from fxnet.metrics.basic import si_sdr
from fxnet.models import build
from fxnet.models.openunmix import ideal_ratio_mask
from fxnet.synth import generate

SR = 44100

SMALL = {
    "openunmix": {"arch": "openunmix", "n_fft": 256, "hop": 64, "hidden": 32, "context": 2048, "chunk": 2048,
                  "overlap": 0},
    "crafx": {"arch": "crafx", "filters": 8, "lstm": [16, 8, 4], "dense": [16], "context": 1024, "chunk": 2048,
              "overlap": 0},
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(arch: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build({"sample_rate": SR, **SMALL[arch], **overrides})


def perturb(model) -> None:
    """Move a fresh model away from its identity initialisation (non-trivial outputs)."""
    torch.manual_seed(123)
    if model.arch == "openunmix":
        torch.nn.init.normal_(model.bn3.weight, std=0.5)
    else:
        for p in model.dense[-1].parameters():
            torch.nn.init.normal_(p, std=0.3)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------ contract
@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
def test_registered_and_default_size(arch):
    model = build({"arch": arch, "sample_rate": SR})
    n = n_params(model)
    print(f"{arch}: {n} parameters (mono, defaults)")
    low, high = {"openunmix": (0.9e6, 1.1e6), "crafx": (0.3e6, 1.0e6)}[arch]
    assert low < n < high
    g = model.geometry
    assert g.channels == 1 and g.latency == 0
    assert g.left_context == g.right_context and g.left_context % g.multiple == 0
    assert g.multiple == {"openunmix": 256, "crafx": 64}[arch]


@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
@pytest.mark.parametrize("channels", [1, 2])
def test_shapes_and_untrained_identity(arch, channels):
    model = small(arch).eval()
    g = model.geometry
    for n in (g.multiple, 3 * g.multiple, 1000, 5 * g.multiple + 7):  # non-multiples are padded inside
        x = 0.3 * torch.randn(2, channels, g.left_context + n + g.right_context)
        with torch.no_grad():
            y = model(x, torch.zeros(2, 0))
        assert y.shape == (2, channels, n)
        # both start as the identity: Open-Unmix's mask is 1, CRAFx's correction is 0
        torch.testing.assert_close(y, x[..., g.left_context : g.left_context + n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
def test_channels_are_independent(arch):
    model = small(arch).eval()
    perturb(model)
    g = model.geometry
    x = 0.3 * torch.randn(1, 2, g.left_context + 2 * g.multiple + g.right_context)
    with torch.no_grad():
        both = model(x, torch.zeros(1, 0))
        left = model(x[:, :1], torch.zeros(1, 0))
    torch.testing.assert_close(both[:, :1], left)
    assert not torch.allclose(both[:, :1], both[:, 1:])


@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
def test_geometry_rejects_misaligned_context(arch):
    with pytest.raises(ValueError, match="multiple"):
        build({"arch": arch, "sample_rate": SR, "context": 1000})


def test_openunmix_needs_overlap_add_context():
    with pytest.raises(ValueError, match="at least"):
        build({"arch": "openunmix", "sample_rate": SR, "context": 512})


# ---------------------------------------------------------------------- streaming
@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
@pytest.mark.parametrize("overlap", [0, 256])
def test_engine_chunks_match_one_pass(arch, overlap):
    """Chunks lie on the frame/pool grid: chunked output equals the whole-signal output up
    to the BLSTM's truncated context (bounded by ``context``) and the crossfade."""
    model = small(arch, overlap=overlap).eval()
    perturb(model)
    g = model.geometry
    x = torch.from_numpy(generate(2, 9000, SR, seed=3, families=["chord"]))
    streamed = process_tensor(model, x, knobs=[])
    n = x.shape[-1]
    c = g.left_context
    with torch.no_grad():
        whole = model(torch.nn.functional.pad(x[None], (c, c + (-n) % g.multiple)), torch.zeros(1, 0))[0, :, :n]
    assert streamed.shape == x.shape
    assert (whole - x).abs().max() > 1e-2 * x.abs().max()  # the model does change the signal
    err = (streamed - whole).abs().max().item()
    print(f"{arch} overlap={overlap}: max |streamed - whole| = {err:.2e} (peak {whole.abs().max().item():.2f})")
    assert err < 2e-3 * whole.abs().max().item(), err


# --------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
def test_checkpoint_round_trip(arch, tmp_path):
    model = small(arch)
    perturb(model)
    model.train()
    g = model.geometry
    x = 0.3 * torch.randn(3, 1, g.left_context + 2 * g.multiple + g.right_context)
    model(x, torch.zeros(3, 0))  # update BatchNorm running statistics (Open-Unmix)
    model.eval()
    path = save_model(model, tmp_path / f"{arch}.safetensors", task="remove")
    loaded, info = load_model(path)
    assert info.model_config == model.config() and info.task == "remove"
    assert loaded.geometry == g
    with torch.inference_mode():
        assert torch.equal(model(x, torch.zeros(3, 0)), loaded(x, torch.zeros(3, 0)))


# ------------------------------------------------------------------------ training
@pytest.mark.parametrize("arch", ["openunmix", "crafx"])
def test_short_training_reduces_loss(arch):
    """40 Adam steps on soft clipping -> clean: the loss falls (and every parameter learns)."""
    model = small(arch).train()
    g = model.geometry
    n = 4 * 1024
    clean = torch.from_numpy(generate(4, g.left_context + n + g.right_context, SR, seed=5, families=["chord"]))
    clean = 0.8 * clean / clean.abs().amax(dim=-1, keepdim=True)
    clipped = torch.tanh(3.0 * clean) / 3.0 * 1.5  # soft clipping, level changed too
    x, target = clipped[:, None], clean[:, None, g.left_context : g.left_context + n]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    start = time.perf_counter()
    for _ in range(40):
        opt.zero_grad()
        loss = (model(x, torch.zeros(4, 0)) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"{arch}: loss {losses[0]:.4g} -> {losses[-1]:.4g} in {time.perf_counter() - start:.1f} s")
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.6 * losses[0], losses
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------------------- IRM
def test_irm_of_the_target_itself_is_the_identity():
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((2, 7000))).astype(np.float32)
    y = ideal_ratio_mask(x, x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-4)
    t = torch.from_numpy(x[0])
    yt = ideal_ratio_mask(t, t, n_fft=512, hop=128, clip=True)
    assert isinstance(yt, torch.Tensor) and yt.shape == t.shape
    torch.testing.assert_close(yt, t, atol=1e-4, rtol=0)


@pytest.mark.parametrize("clip", [False, True])
def test_irm_recovers_the_target_from_a_noisy_mixture(clip):
    """The oracle's golden property: far better than the mixture it starts from."""
    target = generate(1, 3 * SR // 2, SR, seed=7, families=["chord"])[0]
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(target.shape).astype(np.float32)
    noise *= np.sqrt(np.mean(target**2) / np.mean(noise**2))  # 0 dB SNR
    mixture = target + noise
    estimate = ideal_ratio_mask(target, mixture, clip=clip)
    assert estimate.shape == mixture.shape
    before, after = si_sdr(mixture, target), si_sdr(estimate, target)
    print(f"IRM clip={clip}: SI-SDR {before:.1f} -> {after:.1f} dB")
    assert before < 1.0 and after > before + 10.0
    assert ideal_ratio_mask(target[None], mixture[None], clip=clip).shape == (1, target.shape[0])


def test_crafx_paper_variant_untied_without_residual():
    """residual=False (the paper's plain output) and tied=False (own synthesis filters)."""
    model = small("crafx", residual=False, tied=False).train()
    g = model.geometry
    x = 0.3 * torch.randn(2, 1, g.left_context + 2 * g.multiple + g.right_context)
    y = model(x, torch.zeros(2, 0))
    assert y.shape == (2, 1, 2 * g.multiple)
    y.pow(2).mean().backward()
    assert model.deconv.grad is not None and model.deconv.grad.abs().sum() > 0
    with torch.no_grad():  # zero-preserving: silence in, silence out
        assert model(torch.zeros_like(x), torch.zeros(2, 0)).abs().max() == 0
