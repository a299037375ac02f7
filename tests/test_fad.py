"""Fréchet audio distance: closed forms, embeddings, and a VGGish-style model served by a stand-in Hub."""

from __future__ import annotations

import math

import huggingface_hub  # noqa: F401  imported before any test sets HF_* variables
import numpy as np
import pytest
import torch
from huggingface_hub import constants as hf_constants
from scipy import linalg

from fxnet.errors import CheckpointError, UsageError
from fxnet.metrics.evaluate import Pair, evaluate
from fxnet.metrics.fad import (LogMelStatsEmbedding, VGGishEmbedding, build_vggish, embed, fad, fad_from_embeddings,
                               frechet_distance, gaussian_stats, get_embedding, log_mel, save_vggish)
from hubserver import HubServer

TINY = {"features": [4, "M", 8, "M"], "embedding": [16, 8]}
REPO, FILE = "fxnet-test/vggish-tiny", "vggish-tiny.safetensors"


def random_cov(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


def sqrtm_reference(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's general matrix square root."""
    covmean = linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# --- the distance ------------------------------------------------------------------------


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16))
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(x)) == pytest.approx(0.0, abs=1e-9)
    assert fad_from_embeddings([x[:100], x[100:]], x) == pytest.approx(0.0, abs=1e-9)


def test_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # diagonal: sum (mu diff)^2 + sum (sqrt a - sqrt b)^2
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 1.0 + 4.0 + (1 - 3) ** 2 + (2 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want)
    # commuting covariances (shared eigenvectors): the diagonal formula in a rotated basis
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))
    got = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(want, rel=1e-10)


def test_matches_the_sqrtm_formula_and_is_symmetric():
    rng = np.random.default_rng(2)
    for d, rank in ((5, None), (32, None), (20, 6)):  # the last two covariances are singular
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_cov(rng, d, rank), random_cov(rng, d, rank)
        got = frechet_distance(mu1, s1, mu2, s2)
        assert got == pytest.approx(sqrtm_reference(mu1, s1, mu2, s2), rel=1e-6, abs=1e-8)
        assert got == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)
        assert got >= 0.0


def test_sample_statistics_approach_the_closed_form():
    rng = np.random.default_rng(3)
    x = rng.normal([0.0, 2.0], [1.0, 3.0], size=(200_000, 2))
    y = rng.normal([1.0, 2.0], [2.0, 1.0], size=(200_000, 2))
    want = 1.0 + (1 - 2) ** 2 + (3 - 1) ** 2
    assert fad_from_embeddings(x, y) == pytest.approx(want, rel=0.02)


def test_errors():
    with pytest.raises(UsageError, match="at least 2 embedding vectors"):
        gaussian_stats(np.zeros((1, 4)))
    with pytest.raises(UsageError, match="shapes do not match"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(UsageError, match="at least one file"):
        fad([], [np.zeros(16000)], 16000)


# --- embeddings ------------------------------------------------------------------------------


def tone(freq: float, seconds: float, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)


def test_log_mel_front_end():
    mel = log_mel(tone(1000, 1.0))
    assert mel.shape == (1 + (16000 - 400) // 160, 64)
    centres = 700 * np.expm1(np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)[1:-1] / 1127)
    assert np.argmax(mel.mean(axis=0)) == np.argmin(np.abs(centres - 1000))
    assert np.allclose(log_mel(np.zeros(16000)), math.log(0.01))  # silence sits on the log offset
    assert log_mel(np.zeros(10)).shape == (1, 64)  # shorter than one window: padded


def test_offline_embedding_windows_and_fad_grows_with_distortion():
    emb = LogMelStatsEmbedding()
    vectors = emb(tone(440, 3.0))
    assert vectors.shape == (1 + (298 - 100) // 50, 128)
    assert emb(tone(440, 0.3)).shape == (1, 128)
    np.testing.assert_allclose(vectors[:, 64:].mean(), 0.0, atol=0.05)  # a steady tone: ~no variation in time
    # resampling and mono mixdown happen in embed()
    stereo44 = np.stack([tone(440, 2.0, 44100), tone(440, 2.0, 44100)])
    np.testing.assert_allclose(embed(stereo44, 44100, emb), emb(tone(440, 2.0)), atol=0.05)
    rng = np.random.default_rng(4)
    clean = [tone(f, 2.0) * (1 + 0.2 * rng.standard_normal()) + 0.01 * rng.standard_normal(32000)
             for f in (220, 330, 440, 550, 660, 770)]
    light = [np.clip(x, -0.4, 0.4) for x in clean]
    heavy = [np.clip(x, -0.05, 0.05) for x in clean]
    assert fad(clean, clean, 16000) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < fad(light, clean, 16000) < fad(heavy, clean, 16000)


# --- the VGGish-style model, end to end through the Hub stand-in -----------------------------


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    model = build_vggish(TINY)
    return save_vggish(model, tmp_path / "build" / FILE, TINY)


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_model):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        server.add_file(REPO, FILE, tiny_model.read_bytes())
        yield server


def test_vggish_style_model_downloads_and_embeds(hub, tiny_model):
    spec = f"hf://{REPO}/{FILE}"
    remote = get_embedding(spec)
    assert isinstance(remote, VGGishEmbedding) and remote.dim == 8
    assert [(r.method, r.path) for r in hub.requests] == [("HEAD", f"/{REPO}/resolve/main/{FILE}"),
                                                          ("GET", f"/{REPO}/resolve/main/{FILE}")]
    hub.reset_counts()
    get_embedding(spec)
    assert hub.count("GET") == 0  # cached: at most a HEAD to check the revision
    local = VGGishEmbedding.from_file(tiny_model)
    audio = tone(440, 2.5) + 0.05 * np.random.default_rng(5).standard_normal(40000)
    vectors = remote(audio)
    assert vectors.shape == (2, 8)  # 250 frames -> two 96-frame patches
    np.testing.assert_allclose(vectors, local(audio), rtol=1e-6)
    # the same computation by hand: one patch through the torch module
    patch = torch.from_numpy(log_mel(audio)[:96].astype(np.float32))[None, None]
    with torch.no_grad():
        np.testing.assert_allclose(vectors[0], local.model(patch)[0].numpy(), rtol=1e-5, atol=1e-6)
    assert remote(tone(440, 0.2)).shape == (1, 8)  # shorter than a patch: padded with silence


def test_fad_pipeline_with_the_downloaded_model(hub, tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(6)
    pairs = []
    for i in range(4):
        x = tone(200 + 100 * i, 2.0) + 0.01 * rng.standard_normal(32000)
        sf.write(tmp_path / f"r{i}.wav", x, 16000)
        sf.write(tmp_path / f"e{i}.wav", np.clip(x, -0.1, 0.1), 16000)
        pairs.append(Pair(f"p{i}", str(tmp_path / f"e{i}.wav"), str(tmp_path / f"r{i}.wav")))
    model = get_embedding(f"hf://{REPO}/{FILE}")
    results, sets = evaluate(pairs, ["si_sdr", "fad"], fad_embedding=model)
    assert all(r.ok for r in results) and set(sets) == {"fad"}
    est = [model(sf.read(p.est)[0]) for p in pairs]
    ref = [model(sf.read(p.ref)[0]) for p in pairs]
    assert sets["fad"] == pytest.approx(fad_from_embeddings(est, ref), rel=1e-6)
    assert sets["fad"] > 0.0
    _, same = evaluate([Pair(p.name, p.ref, p.ref) for p in pairs], ["fad"], fad_embedding=model)
    assert same["fad"] == pytest.approx(0.0, abs=1e-9)


def test_bad_model_files_are_checkpoint_errors(tmp_path, tiny_model):
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"features.0.weight": torch.zeros(3, 1, 3, 3)}, str(wrong))
    with pytest.raises(CheckpointError, match="weights do not fit the VGGish-style model") as e:
        VGGishEmbedding.from_file(wrong)
    assert str(wrong) in str(e.value)
    pickled = tmp_path / "model.pt"
    torch.save({"features.0.weight": torch.zeros(4, 1, 3, 3)}, pickled)
    with pytest.raises(CheckpointError, match="not a safetensors embedding model"):
        VGGishEmbedding.from_file(pickled)
    bad_meta = tmp_path / "meta.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad_meta), metadata={"fxnet_embedding": "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        VGGishEmbedding.from_file(bad_meta)
