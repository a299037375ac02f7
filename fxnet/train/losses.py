"""Training losses with one contract: ``loss(pred, target) -> scalar tensor``.

``pred`` and ``target`` are float tensors of the same shape (B, C, T) (any leading
dimensions work; time is the last axis). Every loss is a ``torch.nn.Module`` whose
``forward(pred, target)`` returns a 0-dimensional tensor to *minimise*.

Losses combine with :func:`parse_loss`, e.g. ``"esr+0.5*mrstft"``; a term whose weight
is zero is not computed. Names:

==========  ==========================================================================
logcosh     mean log(cosh(pred - target)) (SignalTrain, Hawley et al. 2019)
esr         error-to-signal ratio (Wright, Damskägg & Välimäki 2019; NAM, GuitarML)
esr_rows    ESR per example, averaged: every knob setting in the batch counts alike
esr_pre     ESR after the pre-emphasis filter 1 - 0.85 z^-1 (GuitarML)
dc          DC error: squared mean error over mean target power (Wright et al. 2019)
mrstft      multi-resolution STFT loss (Yamamoto et al. 2020; auraloss), FFT 1024/2048/512
sisdr       negated scale-invariant SDR in dB (Le Roux et al. 2019), for removal
l1, mse     mean absolute / squared error
==========  ==========================================================================
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch
from torch import nn

from fxnet.errors import UsageError

__all__ = [
    "DCLoss",
    "ESRLoss",
    "RowESRLoss",
    "LogCoshLoss",
    "MultiResolutionSTFTLoss",
    "SISDRLoss",
    "WeightedSum",
    "LOSSES",
    "esr",
    "parse_loss",
]

#: Added to denominators so that silent targets give finite losses.
EPS = 1e-8


def _pre_emphasis(x: torch.Tensor, coefficient: float) -> torch.Tensor:
    """First-order FIR high-pass ``y[t] = x[t] - a x[t-1]`` (drops the first sample)."""
    return x[..., 1:] - coefficient * x[..., :-1]


def esr(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Error-to-signal ratio ``sum (target - pred)^2 / sum target^2`` over all elements.

    Pooled over the whole batch (energy-weighted), so a near-silent crop cannot dominate
    through a tiny denominator. Unitless; 0 is perfect, 1 is as bad as silence.
    """
    err = (target - pred).pow(2).sum()
    return err / (target.pow(2).sum() + eps)


class ESRLoss(nn.Module):
    """Error-to-signal ratio, optionally pre-emphasised (Wright et al. 2019, NAM, GuitarML).

    ``ESR = sum (y - y_hat)^2 / sum y^2`` pooled over the batch; with ``pre_emphasis=a``
    both signals first go through ``1 - a z^-1``, which weights high frequencies as the
    ear does (GuitarML uses a = 0.85). Shapes: (..., T) -> scalar.
    """

    def __init__(self, *, pre_emphasis: float | None = None, eps: float = EPS) -> None:
        super().__init__()
        self.pre_emphasis = pre_emphasis
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.pre_emphasis:
            pred, target = _pre_emphasis(pred, self.pre_emphasis), _pre_emphasis(target, self.pre_emphasis)
        return esr(pred, target, self.eps)


class RowESRLoss(nn.Module):
    """ESR per example (row of the batch), averaged over the rows.

    Pooled ESR weights examples by their energy, so a setting that makes the output
    quiet (heavy compression, limiting) counts for little, yet the fidelity target is
    met per knob setting. Here each example counts alike. A crop that is nearly silent
    must not dominate through its tiny denominator, so each row's energy is floored at
    ``floor`` times the batch's mean row energy. Shapes: (..., T) -> scalar.
    """

    def __init__(self, *, floor: float = 1e-2, eps: float = EPS) -> None:
        super().__init__()
        self.floor = floor
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        err = (target - pred).pow(2).flatten(0, -2).sum(-1)
        energy = target.pow(2).flatten(0, -2).sum(-1)
        floor = self.floor * energy.mean().detach() + self.eps
        return (err / torch.maximum(energy, floor)).mean()


class DCLoss(nn.Module):
    """DC error ``mean_rows (mean_t (y - y_hat))^2 / mean y^2`` (Wright et al. 2019).

    GuitarML trains on ``0.75 * esr_pre + 0.25 * dc``. Shapes: (..., T) -> scalar.
    """

    def __init__(self, *, eps: float = EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dc = (target - pred).mean(-1).pow(2).mean()
        return dc / (target.pow(2).mean() + self.eps)


class LogCoshLoss(nn.Module):
    """``mean log(cosh(y_hat - y))``, SignalTrain's loss (Hawley et al. 2019).

    Behaves like ``d^2 / 2`` for small errors and like ``|d| - log 2`` for large ones.
    Computed as ``|d| + softplus(-2|d|) - log 2``, which never overflows.
    Shapes: (..., T) -> scalar.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = (pred - target).abs()
        return (d + nn.functional.softplus(-2.0 * d) - math.log(2.0)).mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Multi-resolution STFT loss (Yamamoto et al. 2020, "Parallel WaveGAN"; auraloss).

    For each FFT size N (Hann window of N, hop N/4): spectral convergence
    ``||S - S_hat||_F / ||S||_F`` plus the mean absolute difference of log magnitudes,
    averaged over the resolutions. Sizes longer than the signal are skipped (at least
    the largest power of two that fits is used). Shapes: (..., T) -> scalar.
    """

    def __init__(self, fft_sizes: Sequence[int] = (1024, 2048, 512), *, eps: float = 1e-7) -> None:
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.eps = eps

    def _magnitude(self, x: torch.Tensor, n_fft: int) -> torch.Tensor:
        window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
        spec = torch.stft(x, n_fft, hop_length=n_fft // 4, win_length=n_fft, window=window,
                          center=False, return_complex=True)
        return spec.abs().clamp_min(self.eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        length = pred.shape[-1]
        pred = pred.reshape(-1, length).float()
        target = target.reshape(-1, length).float()
        sizes = [n for n in self.fft_sizes if n <= length]
        if not sizes:
            sizes = [1 << max(1, int(math.log2(length)))]
        total = pred.new_zeros(())
        for n_fft in sizes:
            p, t = self._magnitude(pred, n_fft), self._magnitude(target, n_fft)
            sc = torch.linalg.vector_norm(t - p) / (torch.linalg.vector_norm(t) + self.eps)
            log_mag = (t.log() - p.log()).abs().mean()
            total = total + sc + log_mag
        return total / len(sizes)


class SISDRLoss(nn.Module):
    """Negated scale-invariant SDR in dB (Le Roux et al. 2019, "SDR - half-baked or well done?").

    Per row: ``alpha = <s_hat, s> / ||s||^2``, ``SI-SDR = 10 log10(||alpha s||^2 /
    ||alpha s - s_hat||^2)``; the loss is minus the mean over rows. No mean removal unless
    ``zero_mean=True``. Scale-invariant: pair it with ``esr`` when the output level matters.
    Shapes: (..., T) -> scalar (in dB, lower is better).
    """

    def __init__(self, *, zero_mean: bool = False, eps: float = EPS) -> None:
        super().__init__()
        self.zero_mean = zero_mean
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.zero_mean:
            pred = pred - pred.mean(-1, keepdim=True)
            target = target - target.mean(-1, keepdim=True)
        alpha = (pred * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + self.eps)
        scaled = alpha * target
        ratio = scaled.pow(2).sum(-1) / ((scaled - pred).pow(2).sum(-1) + self.eps)
        return -(10.0 * torch.log10(ratio + self.eps)).mean()


class SDRLoss(nn.Module):
    """Negated SDR in dB, per row, averaged: ``-10 log10(||s||^2 / ||s - s_hat||^2)``.

    The training loss of paper 001 (Imort et al. 2022: "All models are optimized using the
    source-to-distortion ratio"). Unlike ``esr``, which pools the error energy of the whole
    batch, the logarithm is taken per example, so a quiet or lightly distorted example
    counts as much as a heavily distorted one. Shapes: (..., T) -> scalar (dB, lower is better).
    """

    def __init__(self, *, eps: float = EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ratio = (target.pow(2).sum(-1) + self.eps) / ((target - pred).pow(2).sum(-1) + self.eps)
        return -(10.0 * torch.log10(ratio)).mean()


class _Mean(nn.Module):
    def __init__(self, p: int) -> None:
        super().__init__()
        self.p = p

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = (pred - target).abs()
        return (d if self.p == 1 else d.pow(2)).mean()


#: Loss name -> constructor (no arguments).
LOSSES = {
    "logcosh": LogCoshLoss,
    "esr": ESRLoss,
    "esr_rows": RowESRLoss,
    "esr_pre": lambda: ESRLoss(pre_emphasis=0.85),
    "dc": DCLoss,
    "mrstft": MultiResolutionSTFTLoss,
    "sisdr": SISDRLoss,
    "sdr": SDRLoss,
    "l1": lambda: _Mean(1),
    "mse": lambda: _Mean(2),
}


class WeightedSum(nn.Module):
    """``sum_i w_i * loss_i(pred, target)``; ``spec`` is the canonical text form."""

    def __init__(self, terms: Sequence[tuple[float, str]]) -> None:
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.names = [name for _, name in terms]
        self.terms = nn.ModuleList(LOSSES[name]() for _, name in terms)

    @property
    def spec(self) -> str:
        return "+".join(name if w == 1.0 else f"{w:g}*{name}" for w, name in zip(self.weights, self.names))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros((), dtype=torch.float32)
        for w, term in zip(self.weights, self.terms):
            total = total + w * term(pred.float(), target.float())
        return total


_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?([a-z_0-9]+)\s*$")


def parse_loss(spec: str) -> WeightedSum:
    """Parse ``"esr+0.5*mrstft"`` into a :class:`WeightedSum`; zero-weight terms are dropped.

    Raises UsageError naming the bad term and listing the known losses.
    """
    terms: list[tuple[float, str]] = []
    for part in spec.split("+"):
        m = _TERM.match(part)
        if not m or m.group(2) not in LOSSES:
            raise UsageError(
                f"--loss: cannot read term '{part.strip()}' in '{spec}'; use WEIGHT*NAME joined by '+' "
                f"with NAME one of: {', '.join(LOSSES)}"
            )
        weight = float(m.group(1)) if m.group(1) else 1.0
        if weight != 0.0:
            terms.append((weight, m.group(2)))
    if not terms:
        raise UsageError(f"--loss '{spec}' has no term with a non-zero weight")
    return WeightedSum(terms)
