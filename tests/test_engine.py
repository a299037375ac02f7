"""Property tests of the streaming overlap-add engine (fxnet.engine)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fxnet.engine import StreamingEngine, process_tensor
from fxnet.models.base import Geometry
from fxnet.models.simple import FIR, Gain

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
lengths = st.one_of(st.integers(1, 5), st.integers(6, 700), st.sampled_from([64, 128, 256, 512, 1024]),
                    st.integers(2000, 9000))


def _signal(channels: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(channels, length, generator=g)


@SETTINGS
@given(length=lengths, chunk=st.integers(1, 600), overlap=st.integers(0, 300), block=st.integers(1, 3000),
       channels=st.integers(1, 3), batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_identity_and_gain_reproduce_input(length, chunk, overlap, block, channels, batch, seed):
    assume(length / chunk < 500)  # keeps the run short; tiny chunks are covered on short inputs
    x = _signal(channels, length, seed)
    model = Gain(sample_rate=44100, chunk=chunk)
    geometry = model.geometry.with_overrides(overlap=overlap)
    y = process_tensor(model, x, geometry=geometry, block_frames=block, batch_size=batch)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    with torch.no_grad():
        model.gain_db.fill_(-6.0)
    y = process_tensor(model, x, geometry=geometry, block_frames=block, batch_size=batch)
    torch.testing.assert_close(y, x * 10 ** (-6 / 20), atol=1e-6, rtol=0)


@SETTINGS
@given(length=lengths, taps=st.integers(1, 80), chunk=st.integers(1, 500), block=st.integers(1, 2000),
       channels=st.integers(1, 2), batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_causal_fir_matches_lfilter(length, taps, chunk, block, channels, batch, seed):
    assume(length / chunk < 500)
    x = _signal(channels, length, seed)
    model = FIR(sample_rate=44100, taps=taps, chunk=chunk)
    h = torch.randn(taps, generator=torch.Generator().manual_seed(seed + 1)) / taps**0.5
    with torch.no_grad():
        model.h0.copy_(h)
    y = process_tensor(model, x, block_frames=block, batch_size=batch)
    expected = scipy.signal.lfilter(h.double().numpy(), [1.0], x.double().numpy(), axis=-1)
    np.testing.assert_allclose(y.numpy(), expected, atol=2e-5)


@SETTINGS
@given(length=lengths, latency=st.integers(0, 63), chunk=st.integers(1, 400), block=st.integers(1, 1500),
       seed=st.integers(0, 2**16))
def test_declared_latency_comes_out_aligned(length, latency, chunk, block, seed):
    assume(length / chunk < 500)
    x = _signal(2, length, seed)
    # A FIR that delays by `latency` and declares it: the engine must undo the delay.
    model = FIR(sample_rate=44100, taps=64, latency=latency, chunk=chunk)
    y = process_tensor(model, x, block_frames=block)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


class _Lookahead(torch.nn.Module):
    """y[t] = x[t + right] - x[t - left]: needs both contexts; a shape test of the contract."""

    def __init__(self, left: int, right: int, chunk: int, multiple: int = 1):
        super().__init__()
        self.geometry = Geometry(sample_rate=8000, left_context=left, right_context=right, chunk=chunk,
                                 multiple=multiple)
        self.left, self.right = left, right

    def forward(self, x, knobs):
        n = x.shape[-1] - self.left - self.right
        assert n % self.geometry.multiple == 0
        return x[..., self.left + self.right:] - x[..., : n]


@SETTINGS
@given(length=lengths, left=st.integers(0, 50), right=st.integers(0, 50), multiple=st.sampled_from([1, 2, 16, 64]),
       chunks=st.integers(1, 8), overlap=st.integers(0, 40), block=st.integers(1, 999), seed=st.integers(0, 2**16))
def test_left_and_right_context_and_multiples(length, left, right, multiple, chunks, overlap, block, seed):
    x = _signal(1, length, seed)
    model = _Lookahead(left, right, chunk=chunks * multiple, multiple=multiple)
    g = model.geometry.with_overrides(overlap=overlap)
    y = process_tensor(model, x, geometry=g, block_frames=block)
    padded = torch.nn.functional.pad(x, (left, right))
    expected = padded[:, left + right:] - padded[:, :length]
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_knob_automation_is_evaluated_per_chunk():
    model = Gain(sample_rate=100, chunk=50, knobs=[{"name": "g"}])
    with torch.no_grad():
        model.knob_db.fill_(-20.0)  # knob 1 -> -20 dB
    x = torch.ones(1, 200)
    y = process_tensor(model, x, knobs=lambda t: [0.0 if t < 1.0 else 1.0], block_frames=33)
    torch.testing.assert_close(y[0, :100], torch.ones(100))
    torch.testing.assert_close(y[0, 100:], torch.full((100,), 0.1))


def test_memory_is_bounded_by_geometry_not_length():
    """The engine's buffers never grow with the stream: feed 10^7 frames lazily."""
    model = FIR(sample_rate=44100, taps=16, chunk=4096)
    engine = StreamingEngine(model, batch_size=4)
    sizes = []
    block = torch.zeros(2, 8192)
    total = 0
    for out in engine.process(block for _ in range(1200)):
        sizes.append(out.shape[1])
        total += out.shape[1]
    assert total == 1200 * 8192
    assert max(sizes) <= 4 * 4096  # at most one batch of chunks is held back


def test_dry_wet_and_gain():
    model = FIR(sample_rate=44100, taps=8, latency=2, chunk=100)
    with torch.no_grad():
        model.h0.mul_(3.0)  # wet = 3 x (after latency compensation)
    x = _signal(2, 1000, 1)
    y = process_tensor(model, x, dry_wet=0.25, gain_db=20 * np.log10(0.5), block_frames=97)
    torch.testing.assert_close(y, x * (0.25 * 3 + 0.75) * 0.5, atol=1e-5, rtol=0)


def test_mono_model_processes_each_channel_independently():
    model = FIR(sample_rate=44100, taps=4, chunk=64)
    with torch.no_grad():
        model.h0.copy_(torch.tensor([0.5, 0.25, 0.0, 0.0]))
    x = _signal(3, 300, 7)
    y = process_tensor(model, x, block_frames=50)
    for c in range(3):
        torch.testing.assert_close(y[c:c + 1], process_tensor(model, x[c:c + 1]), atol=1e-6, rtol=0)


def test_multichannel_model_rejects_other_channel_counts():
    from fxnet.errors import UsageError

    model = _Lookahead(0, 0, 16)
    model.geometry = Geometry(sample_rate=8000, channels=2, chunk=16)
    with pytest.raises(UsageError, match="expects 2 channel"):
        process_tensor(model, torch.zeros(3, 100))


def test_default_chunk_is_at_least_four_contexts():
    from fxnet.process import ProcessOptions, engine_geometry

    g = Geometry(sample_rate=44100, left_context=1000, chunk=2000, multiple=32)
    assert engine_geometry(g, ProcessOptions()).chunk == 4000  # 4 x 1000, a multiple of 32
    assert engine_geometry(g, ProcessOptions(chunk_seconds=1024 / 44100)).chunk == 1024  # asked for: kept
    wide = Geometry(sample_rate=44100, left_context=1000, chunk=65536, multiple=32)
    assert engine_geometry(wide, ProcessOptions()).chunk == 65536
    odd = Geometry(sample_rate=44100, left_context=1001, chunk=2048, multiple=32)
    assert engine_geometry(odd, ProcessOptions()).chunk == 4032  # rounded up to the multiple


def test_default_batch_holds_about_two_million_samples():
    from fxnet.process import auto_batch_size

    la2a = Geometry(sample_rate=44100, left_context=262112, chunk=1048448, multiple=32)
    comp4c = Geometry(sample_rate=44100, left_context=16368, chunk=262144, multiple=16)
    assert auto_batch_size(la2a, 1) == 1 and auto_batch_size(la2a, 2) == 1
    assert auto_batch_size(comp4c, 1) == 7 and auto_batch_size(comp4c, 2) == 3
    huge = Geometry(sample_rate=44100, chunk=1 << 24)
    assert auto_batch_size(huge, 2) == 1
