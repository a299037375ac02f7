"""A knob-conditioned waveshaper: a learned static nonlinearity, a learned DC blocker and
a dry/wet mix, for the overdrive/clipper family of effects.

Many drive pedals and plug-ins are, to first order, a memoryless curve between linear
filters (the Wiener-Hammerstein picture; SoX's ``overdrive`` is exactly a soft clipper
after a gain and an offset, a one-pole DC blocker and a dry mix). A general network
(TCN, LSTM) has to discover that from data, and on a CPU it runs at tens of times real
time at best (the ``rnn`` model: ~27x real time on one thread). This one has the
structure built in and learns its parts: ~600 parameters; evaluated per sample, the
forward pass alone ran at 99x real time on one thread (16 units x 2 layers; 149x with
one layer), and inference uses a table instead (below), 4.5-10x faster again::

    knobs (B, K) --> log input gain a, offset b, dry gain d, wet gain w   (Linear + MLP)
    u = exp(a) * x + b                                                    (drive, per sample)
    s = MLP([u, knobs]) per sample: 1x1 convolutions, tanh, ``hidden`` wide, ``layers`` deep
    h = DC blocker on s: y[n] = s[n] - s[n-1] + p y[n-1], p learned (starts at 0.995), run as
        an FIR of its impulse response truncated to ``taps`` samples (FFT convolution)
    y = d * x + w * h

Inference (no gradients) does not run the MLP per sample. The knobs are constant over a
chunk, so the curve is a function of ``u`` alone there: it is tabulated at ``lut``
points spaced evenly in ``asinh(u)`` over the row's range of ``u`` (dense near zero,
where a clipper bends, sparse in the flat tails), and every sample interpolates
linearly in that table. This is an approximation of the per-sample MLP whose error the
tests bound (far below the model's own error against the effect); ``lut=0`` turns it
off.

The DC blocker needs ``taps - 1`` past samples, declared as left context, so chunked
output equals whole-file output up to float rounding. The pole does not depend on the
knobs. Like SoX, the model does not adapt to the sample rate. The training summary says
how faithful it is.

What it cannot model: effects with memory in the nonlinearity (compressors, fuzz with
bias drift), tone stacks with knob-dependent filters, or a hard bypass at one knob value
(SoX's overdrive passes the input unchanged at exactly 0 dB gain; the model learns the
continuous limit instead).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fxnet.models.base import FxModel, Geometry


class WaveShaper(FxModel):
    """``forward(x (B, C, taps - 1 + n), knobs (B, K)) -> (B, C, n)``, C channels as batch items.

    Hyper-parameters: ``hidden`` (width of the curve's MLP, 16), ``layers`` (hidden layers,
    2), ``taps`` (DC-blocker impulse-response length, 8192), ``pole`` (its initial pole,
    0.995), ``chunk`` (preferred output samples per engine chunk), ``lut`` (points of
    the inference table of the curve, 4096; 0 = evaluate the MLP per sample).
    """

    arch = "waveshaper"

    def __init__(self, *, sample_rate: int = 44100, knobs=(), hidden: int = 16, layers: int = 2, taps: int = 8192,
                 pole: float = 0.995, chunk: int = 1 << 16, lut: int = 4096):
        if hidden < 1 or layers < 1 or taps < 2 or not 0.0 < pole < 1.0 or lut == 1 or lut < 0:
            raise ValueError("waveshaper: need hidden >= 1, layers >= 1, taps >= 2, 0 < pole < 1, lut 0 or >= 2")
        super().__init__(sample_rate=sample_rate, knobs=knobs, hidden=hidden, layers=layers, taps=taps, pole=pole,
                         chunk=chunk, lut=lut)
        k = self.num_knobs
        self.control_linear = nn.Linear(k, 4) if k else None
        self.control_mlp = nn.Sequential(nn.Linear(k, 32), nn.Tanh(), nn.Linear(32, 4)) if k else None
        self.control_bias = nn.Parameter(torch.tensor([0.0, 0.0, 0.5, 1.0]))  # log gain, offset, dry, wet
        if self.control_mlp is not None:
            nn.init.zeros_(self.control_linear.weight)
            nn.init.zeros_(self.control_linear.bias)
            nn.init.zeros_(self.control_mlp[-1].weight)
            nn.init.zeros_(self.control_mlp[-1].bias)
        widths = [1 + k] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Conv1d(a, b, 1), nn.Tanh()]
        body.append(nn.Conv1d(widths[-1], 1, 1))
        self.curve = nn.Sequential(*body)
        self.pole_logit = nn.Parameter(torch.tensor(math.log(pole / (1.0 - pole))))

    @property
    def geometry(self) -> Geometry:
        return Geometry(sample_rate=self.sample_rate, channels=1, left_context=self.hparams["taps"] - 1,
                        chunk=self.hparams["chunk"])

    def controls(self, knobs: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, 4): log input gain, offset, dry gain, wet gain."""
        c = self.control_bias.expand(knobs.shape[0], 4)
        if self.control_mlp is not None:
            c = c + self.control_linear(knobs) + self.control_mlp(knobs)
        return c

    def dc_blocker(self) -> torch.Tensor:
        """Impulse response of (1 - z^-1) / (1 - p z^-1), truncated to ``taps``: (taps,)."""
        p = torch.sigmoid(self.pole_logit)
        k = torch.arange(self.hparams["taps"] - 1, device=p.device, dtype=p.dtype)
        tail = -(1.0 - p) * torch.exp(k * torch.log(p))  # h[k+1] = p^(k+1) - p^k
        return torch.cat([torch.ones(1, device=p.device, dtype=p.dtype), tail])

    def _curve(self, u: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """The learned curve at every sample: u (R, L), knobs (R, K) -> (R, L)."""
        length = u.shape[-1]
        inp = u[:, None]
        if self.num_knobs:
            inp = torch.cat([inp, knobs[:, :, None].expand(-1, -1, length)], dim=1)
        return self.curve(inp)[:, 0]

    def _curve_table(self, u: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """The curve by table look-up (inference): same contract as ``_curve``."""
        points = self.hparams["lut"]
        t = torch.asinh(u)
        lo = t.amin(-1, keepdim=True)
        span = (t.amax(-1, keepdim=True) - lo).clamp_min(1e-6)
        grid = lo + span * torch.linspace(0.0, 1.0, points, device=u.device, dtype=u.dtype)  # (R, points)
        table = self._curve(torch.sinh(grid), knobs)
        pos = (t - lo) * ((points - 1) / span)
        i0 = pos.floor().clamp_(0, points - 2)
        frac = pos - i0
        i0 = i0.long()
        left = table.gather(1, i0)
        return left + (table.gather(1, i0 + 1) - left) * frac

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        b, ch, length = x.shape
        taps = self.hparams["taps"]
        n = length - (taps - 1)
        knobs = knobs.to(x.dtype)
        c = self.controls(knobs)  # (B, 4)
        rows = x.reshape(b * ch, length)
        c = c.repeat_interleave(ch, dim=0)[:, :, None]  # (B*C, 4, 1)
        u = torch.exp(c[:, 0]) * rows + c[:, 1]
        knob_rows = knobs.repeat_interleave(ch, dim=0)
        use_table = 0 < self.hparams["lut"] < length and not torch.is_grad_enabled()
        s = (self._curve_table if use_table else self._curve)(u, knob_rows)  # (B*C, length)
        h = self.dc_blocker().to(s.dtype)
        size = 1 << math.ceil(math.log2(length + taps - 1))
        wet = torch.fft.irfft(torch.fft.rfft(s, size) * torch.fft.rfft(h, size), size)[:, taps - 1 : length]
        y = c[:, 2] * rows[:, taps - 1 :] + c[:, 3] * wet
        return y.reshape(b, ch, n)
