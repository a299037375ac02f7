"""Fréchet Audio Distance (Kilgour, Zuluaga, Roblek & Sharifi, Interspeech 2019).

Embed every file of two sets, fit a Gaussian (mean mu, covariance Sigma) to each set's
embedding vectors, and take the Fréchet (2-Wasserstein) distance between the Gaussians
(Dowson & Landau 1982)::

    FAD = ||mu_1 - mu_2||^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))

0 for identical distributions, lower is better. A set metric: one number per pair of
folders, not per file. Two embeddings:

* :class:`LogMelStatsEmbedding` (``"logmel"``, the default, needs no download): per 1 s
  window (hop 0.5 s) of 16 kHz mono audio, the mean and standard deviation over time of
  VGGish's 64-band log-mel spectrogram -> 128 numbers. It sees the spectral envelope and
  its short-term variation only: no learned features, nothing about pitch or timbre
  beyond the mel envelope, nothing about fine temporal structure inside a window. Its
  values are not comparable with published (VGGish) FAD figures, only with each other.
* :class:`VGGishEmbedding`: a VGGish-style CNN (Hershey et al. 2017, as used by Kilgour
  et al.) on 0.96 s log-mel patches, its weights a safetensors file found through
  :func:`fxnet.registry.resolve_model` (a path, ``hf://org/repo/file.safetensors``, or a
  registry name), downloaded and cached like fxnet's models. Layer names follow the
  PyTorch port of VGGish (``features.N``, ``embeddings.N``), so a converted state dict
  loads as is; the architecture is read from the file's metadata. Nothing is unpickled.

The Gaussian fit needs more embedding vectors than dimensions for a full-rank covariance
(128 dimensions: > 64 s of audio per set with the default embedding). With fewer, the
covariance is singular and FAD is biased upwards; the distance is still defined.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from fxnet.errors import CheckpointError, UsageError

__all__ = [
    "DEFAULT_EMBEDDING",
    "Embedding",
    "LogMelStatsEmbedding",
    "VGGishEmbedding",
    "build_vggish",
    "embed",
    "fad",
    "fad_from_embeddings",
    "frechet_distance",
    "gaussian_stats",
    "get_embedding",
    "log_mel",
    "save_vggish",
]

DEFAULT_EMBEDDING = "logmel"
#: Metadata key in an embedding model's safetensors header holding its JSON config.
METADATA_KEY = "fxnet_embedding"

# VGGish's front end (Hershey et al. 2017; vggish_params.py of the TF release).
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
N_FFT = 512
N_MELS = 64
MEL_FMIN_HZ = 125.0
MEL_FMAX_HZ = 7500.0
LOG_OFFSET = 0.01


class Embedding(Protocol):
    """Maps mono audio at ``sample_rate`` to embedding vectors (windows, dim)."""

    name: str
    sample_rate: int
    dim: int

    def __call__(self, audio: np.ndarray) -> np.ndarray: ...


# --- the Fréchet distance -----------------------------------------------------------


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982).

    ``tr((S1 S2)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of
    the symmetric PSD matrix ``S1^(1/2) S2 S1^(1/2)`` (same spectrum as S1 S2), which
    needs no complex matrix square root and no regularisation for singular covariances.
    Tiny negative results from rounding are returned as 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise UsageError(f"Fréchet distance: shapes do not match: mu {mu1.shape}/{mu2.shape}, "
                         f"sigma {s1.shape}/{s2.shape}")
    s1, s2 = 0.5 * (s1 + s1.T), 0.5 * (s2 + s2.T)
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * tr_covmean
    return max(value, 0.0)


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of embedding vectors (n, dim), n >= 2."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] < 2:
        raise UsageError(f"FAD needs at least 2 embedding vectors per set, got {e.shape[0] if e.ndim == 2 else 0} "
                         "(use more or longer files)")
    return e.mean(axis=0), np.cov(e, rowvar=False).reshape(e.shape[1], e.shape[1])


def fad_from_embeddings(est: np.ndarray | Sequence[np.ndarray], ref: np.ndarray | Sequence[np.ndarray]) -> float:
    """FAD between two sets of embedding vectors, each (n, dim) or a list of (n_i, dim)."""
    e = np.concatenate(list(est), axis=0) if not isinstance(est, np.ndarray) else est
    r = np.concatenate(list(ref), axis=0) if not isinstance(ref, np.ndarray) else ref
    return frechet_distance(*gaussian_stats(e), *gaussian_stats(r))


# --- the log-mel front end ------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # HTK mel scale, as VGGish


@lru_cache(maxsize=4)
def _mel_matrix(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                fmin: float = MEL_FMIN_HZ, fmax: float = MEL_FMAX_HZ) -> np.ndarray:
    """(bins, mels) triangles, equally spaced on the HTK mel scale; the DC bin gets no weight."""
    bins_mel = _hz_to_mel(np.fft.rfftfreq(n_fft, 1.0 / sample_rate))
    edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


def log_mel(audio: np.ndarray) -> np.ndarray:
    """VGGish's log-mel spectrogram of mono 16 kHz audio: (frames, 64) float64.

    |STFT| with a periodic Hann window of 25 ms, hop 10 ms, FFT 512, no padding (audio
    shorter than one window is zero-padded to it); 64 HTK-mel bands 125-7500 Hz;
    ``log(mel + 0.01)``.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if x.size < WINDOW_SAMPLES:
        x = np.pad(x, (0, WINDOW_SAMPLES - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[::HOP_SAMPLES]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW_SAMPLES) / WINDOW_SAMPLES)
    magnitude = np.abs(np.fft.rfft(frames * window, N_FFT, axis=-1))
    return np.log(magnitude @ _mel_matrix() + LOG_OFFSET)


@dataclass
class LogMelStatsEmbedding:
    """Offline embedding: mean and std over time of the log-mel frames of 1 s windows.

    128 numbers per window (64 means, 64 standard deviations), windows of 100 frames
    (1 s) every 50 frames (0.5 s); audio shorter than 1 s gives one window over all of
    it. Needs no weights; see the module docstring for what it cannot see.
    """

    name: str = "logmel"
    sample_rate: int = SAMPLE_RATE
    dim: int = 2 * N_MELS
    window_frames: int = 100
    hop_frames: int = 50

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        mel = log_mel(audio)
        if mel.shape[0] <= self.window_frames:
            windows = mel[None]
        else:
            windows = np.lib.stride_tricks.sliding_window_view(mel, self.window_frames, axis=0)[:: self.hop_frames]
            windows = np.moveaxis(windows, -1, 1)  # (windows, frames, mels)
        return np.concatenate([windows.mean(axis=1), windows.std(axis=1)], axis=-1)


# --- the VGGish-style model -------------------------------------------------------------

#: VGGish's architecture (Hershey et al. 2017): conv widths with 'M' for 2x2 max pooling,
#: then the fully connected embedding layers.
VGGISH_CONFIG: dict[str, Any] = {
    "architecture": "vggish",
    "features": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"],
    "embedding": [4096, 4096, 128],
    "final_relu": True,
    "patch_frames": 96,
    "hop_frames": 96,
}


def _build_vggish(config: dict[str, Any]):
    """The torch module for ``config`` (imported lazily: torch is only needed here)."""
    from torch import nn

    class VGGishNet(nn.Module):
        """Conv stack on (N, 1, frames, mels) patches, then FC layers; VGGish's layer names."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            channels, pools = 1, 0
            for v in config["features"]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                    pools += 1
                else:
                    layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU()]
                    channels = int(v)
            self.features = nn.Sequential(*layers)
            height, width = config["patch_frames"] >> pools, N_MELS >> pools
            if height < 1 or width < 1:
                raise CheckpointError(f"embedding model config pools {pools} times: too often for "
                                      f"{config['patch_frames']}x{N_MELS} patches")
            fc: list[nn.Module] = []
            size = channels * height * width
            for i, out in enumerate(config["embedding"]):
                fc.append(nn.Linear(size, int(out)))
                if i < len(config["embedding"]) - 1 or config.get("final_relu", True):
                    fc.append(nn.ReLU())
                size = int(out)
            self.embeddings = nn.Sequential(*fc)
            self.dim = size

        def forward(self, x):
            x = self.features(x)
            # channels last before flattening, as the TF original (and its PyTorch port)
            return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))

    return VGGishNet()


def _read_config(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - any parse failure means "not a safetensors file"
        raise CheckpointError(f"not a safetensors embedding model ({str(e).splitlines()[0][:160]})", path=path) from None
    config = dict(VGGISH_CONFIG)
    if METADATA_KEY in metadata:
        try:
            given = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"metadata '{METADATA_KEY}' is not valid JSON ({e})", path=path) from None
        if not isinstance(given, dict) or given.get("architecture", "vggish") != "vggish":
            raise CheckpointError(f"metadata '{METADATA_KEY}' does not describe a VGGish-style model", path=path)
        config.update(given)
    return config


@dataclass
class VGGishEmbedding:
    """VGGish-style embeddings of 0.96 s log-mel patches (hop 0.96 s), one vector each.

    Load with :meth:`from_spec`. Audio shorter than one patch is padded with silence.
    """

    model: Any = field(repr=False)
    config: dict[str, Any]
    name: str = "vggish"
    sample_rate: int = SAMPLE_RATE
    batch_patches: int = 64

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    @classmethod
    def from_spec(cls, spec: str) -> "VGGishEmbedding":
        """Resolve ``spec`` like an fxnet model (path, hf://..., registry name) and load it."""
        from fxnet.registry import resolve_model

        return cls.from_file(resolve_model(spec), name=spec)

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None) -> "VGGishEmbedding":
        from safetensors.torch import load_file

        path = Path(path)
        config = _read_config(path)
        model = _build_vggish(config)
        state = load_file(str(path))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            detail = " ".join(str(e).split())[:240]
            raise CheckpointError(f"weights do not fit the VGGish-style model in its metadata ({detail})",
                                  path=path) from None
        model.eval()
        return cls(model=model, config=config, name=name or path.stem)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import torch

        mel = log_mel(audio)
        size, hop = int(self.config["patch_frames"]), int(self.config["hop_frames"])
        if mel.shape[0] < size:
            mel = np.concatenate([mel, np.full((size - mel.shape[0], mel.shape[1]), math.log(LOG_OFFSET))])
        patches = np.lib.stride_tricks.sliding_window_view(mel, size, axis=0)[::hop]
        patches = np.ascontiguousarray(np.moveaxis(patches, -1, 1), dtype=np.float32)  # (n, frames, mels)
        out = []
        with torch.inference_mode():
            for i in range(0, patches.shape[0], self.batch_patches):
                batch = torch.from_numpy(patches[i : i + self.batch_patches]).unsqueeze(1)
                out.append(self.model(batch).double().numpy())
        return np.concatenate(out, axis=0)


def save_vggish(model: Any, path: str | Path, config: dict[str, Any]) -> Path:
    """Write a VGGish-style module's weights and config as safetensors (for tests and conversions)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={METADATA_KEY: json.dumps(dict(config, architecture="vggish"))})
    return path


def build_vggish(config: dict[str, Any] | None = None):
    """A freshly initialised VGGish-style module for ``config`` (default: VGGish itself)."""
    return _build_vggish(dict(VGGISH_CONFIG, **(config or {})))


def get_embedding(spec: str | None = None) -> Embedding:
    """``"logmel"`` (or None) -> the offline embedding; anything else is a model spec."""
    if spec is None or spec == DEFAULT_EMBEDDING:
        return LogMelStatsEmbedding()
    return VGGishEmbedding.from_spec(spec)


# --- from audio to FAD -------------------------------------------------------------------


def embed(audio: np.ndarray, sample_rate: int, embedding: Embedding) -> np.ndarray:
    """Embedding vectors (windows, dim) of ``audio`` (samples,) or (channels, samples).

    Channels are averaged to mono, then resampled to the embedding's rate with soxr.
    """
    x = np.asarray(audio, dtype=np.float64)
    mono = x.mean(axis=0) if x.ndim == 2 else x.reshape(-1)
    if sample_rate != embedding.sample_rate:
        import soxr

        mono = soxr.resample(mono, sample_rate, embedding.sample_rate, quality="HQ")
    return np.asarray(embedding(mono), dtype=np.float64)


def fad(est_items: Sequence[np.ndarray], ref_items: Sequence[np.ndarray], sample_rate: int, *,
        embedding: Embedding | None = None) -> float:
    """FAD between a set of estimates and a set of references (lists of arrays at one rate).

    The sets need not pair up or have equal sizes. ``embedding`` defaults to the offline
    :class:`LogMelStatsEmbedding`.
    """
    emb = embedding or LogMelStatsEmbedding()
    if not est_items or not ref_items:
        raise UsageError("FAD needs at least one file in each set")
    return fad_from_embeddings([embed(x, sample_rate, emb) for x in est_items],
                               [embed(x, sample_rate, emb) for x in ref_items])
