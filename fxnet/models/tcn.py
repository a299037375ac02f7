"""micro-TCN: a dilated temporal convolutional network with FiLM knob conditioning.

After C. J. Steinmetz, J. D. Reiss, "Efficient Neural Networks for Real-time Modeling of
Analog Dynamic Range Compression" (AES 152, 2022), from the description in
``shared/reference/models.md``.

Shapes (B batch, C channels, K knobs, L = left + n + right input samples)::

    knobs (B, K) --MLP K->16->32->32 (ReLU)--> cond (B, 32)
    x (B, 1, L) --block 1..N--> h (B, C, n) --1x1 conv--> (B, 1, n) [tanh] [+ x aligned]

    block i (dilation d = dilation_growth**i):
        y = Conv1d(in, C, kernel, dilation=d, bias=False, unpadded)   # length - (kernel-1)*d
        y = BatchNorm(C, affine=False)(y)                             # over (batch, time)
        y = gamma(cond) * y + beta(cond)                              # FiLM, Linear(32 -> 2C)
        y = PReLU(C)(y)
        y = y + res_weight * crop(x_in)                               # 1x1 depthwise residual

Receptive field ``1 + (kernel - 1) * sum_i dilation_growth**i`` samples: TCN-100 (4
blocks, growth 10, kernel 5) sees 4445 samples with ~26 k parameters, TCN-300 (kernel
13) 13333 samples with ~51 k. ``causal=True`` crops residuals at the end (output sample
``i`` depends on the RF - 1 samples before it); ``causal=False`` centres them.

Deviations from the paper, all reparameterisations or options:

* ``output="linear"`` with ``input_skip=True`` is the default: the 1x1 output conv is
  added to the dry input instead of going through tanh. Compressors and EQs can exceed
  +-1 (make-up gain, boosts) and most effects are close to their input, so this trains
  from a near-identity start and never clips. ``output="tanh"``, ``input_skip=False`` is
  the paper's head.
* FiLM computes ``gamma = 1 + Linear(cond)`` so that an untrained block starts as
  plain BatchNorm (the paper uses the raw Linear output; same family of functions).
* In eval mode BatchNorm uses its running statistics, so chunked and whole-file outputs
  agree up to rounding. It is then fused with FiLM into one per-(batch, channel) affine,
  which is folded into the convolution's weights and bias when every row of the batch has
  the same knobs (the usual case in the engine).

Speed (2-core CPU, see ``bench/bench_models.py``): activations are kept as (B, C, 1, L)
channels-last tensors and the dilated convolutions run as 2-D convolutions, 2-4x faster
in oneDNN than (B, C, L) at these channel counts; with the folding above, a 16-channel
TCN-100 runs ~200x real time on two idle cores where a plain Conv1d version ran ~80x.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fxnet.models.base import FxModel, Geometry

Output = Literal["linear", "tanh"]

_COND_SIZES = (16, 32, 32)


class _Block(nn.Module):
    """One dilated block on (B, C, 1, L) activations stored channels-last.

    The 1-D convolution runs as a height-1 2-D convolution in channels-last layout:
    oneDNN is 2-4x faster on that than on (B, C, L) for the narrow channel counts used
    here. Parameters keep their 1-D shapes (conv weight (C, in, kernel)).
    """

    def __init__(self, in_ch: int, ch: int, kernel: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_ch, ch, kernel, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(ch, affine=False)  # per channel over (batch, time)
        self.act = nn.PReLU(ch)
        self.res_weight = nn.Parameter(torch.ones(ch, 1, 1))  # 1x1 depthwise conv, no bias
        self.dilation = dilation
        self.trim = (kernel - 1) * dilation
        self.offset = self.trim if causal else self.trim // 2  # residual crop start

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """x (B, in, 1, L), gamma/beta (B, C) -> (B, C, 1, L - trim)."""
        weight = self.conv.weight  # (C, in, kernel)
        if self.training or self.norm.running_mean is None:
            y = self.norm(self._conv(x, weight)) * gamma[..., None, None] + beta[..., None, None]
        else:  # BatchNorm (running statistics) then FiLM: one per-(batch, channel) affine
            scale = gamma * torch.rsqrt(self.norm.running_var + self.norm.eps)
            shift = beta - scale * self.norm.running_mean
            if bool((scale == scale[:1]).all() and (shift == shift[:1]).all()):
                # Same knobs across the batch (the usual case): fold into the conv.
                y = self._conv(x, weight * scale[0, :, None, None], shift[0])
            else:
                y = torch.addcmul(shift[..., None, None], self._conv(x, weight), scale[..., None, None])
        y = self.act(y)
        res = x[..., self.offset : self.offset + y.shape[-1]]
        return torch.addcmul(y, res, self.res_weight)

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1] == 1:  # 1 -> C: the taps as one matmul, already channels-last
            taps = x[:, 0, 0].unfold(-1, self.trim + 1, 1)[..., :: self.dilation]  # (B, L', k)
            w = weight[:, 0, :].T  # (k, C)
            if bias is None:
                y = taps @ w
            else:
                y = torch.addmm(bias, taps.reshape(-1, w.shape[0]), w).reshape(*taps.shape[:2], -1)
            return y.transpose(1, 2)[:, :, None, :]
        return F.conv2d(x, weight[:, :, None, :], bias, dilation=(1, self.dilation))


class TCN(FxModel):
    """Knob-conditioned micro-TCN; ``forward(x (B,1,left+n+right), knobs (B,K)) -> (B,1,n)``.

    Hyper-parameters: ``channels`` (32), ``blocks`` (4), ``kernel`` (5),
    ``dilation_growth`` (10), ``causal`` (True), ``output`` ("linear" or "tanh"),
    ``input_skip`` (True), ``chunk`` (preferred output samples per engine chunk).
    """

    arch = "tcn"

    def __init__(
        self,
        *,
        sample_rate: int = 44100,
        knobs=(),
        channels: int = 32,
        blocks: int = 4,
        kernel: int = 5,
        dilation_growth: int = 10,
        causal: bool = True,
        output: Output = "linear",
        input_skip: bool = True,
        chunk: int = 1 << 15,
    ) -> None:
        if output not in ("linear", "tanh"):
            raise ValueError(f"output must be 'linear' or 'tanh', got {output!r}")
        if channels < 1 or blocks < 1 or kernel < 1 or dilation_growth < 1:
            raise ValueError("channels, blocks, kernel and dilation_growth must be positive")
        super().__init__(
            sample_rate=sample_rate, knobs=knobs, channels=channels, blocks=blocks, kernel=kernel,
            dilation_growth=dilation_growth, causal=causal, output=output, input_skip=input_skip,
            chunk=chunk,
        )
        cond_dim = _COND_SIZES[-1]
        if self.num_knobs:
            sizes = (self.num_knobs, *_COND_SIZES)
            layers: list[nn.Module] = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.cond = nn.Sequential(*layers)
        else:  # no knobs: FiLM reduces to a learnt constant affine (its bias)
            self.cond = None
        self.blocks = nn.ModuleList(
            _Block(1 if i == 0 else channels, channels, kernel, dilation_growth**i, causal)
            for i in range(blocks)
        )
        self.film = nn.Linear(cond_dim, blocks * 2 * channels)  # (gamma - 1, beta) of every block
        self.head = nn.Conv1d(channels, 1, 1)
        self._cond_dim = cond_dim

    @property
    def receptive_field(self) -> int:
        """Input samples that one output sample depends on."""
        return 1 + sum(b.trim for b in self.blocks)

    @property
    def geometry(self) -> Geometry:
        left = sum(b.offset for b in self.blocks)
        return Geometry(
            sample_rate=self.sample_rate,
            left_context=left,
            right_context=self.receptive_field - 1 - left,
            chunk=self.hparams["chunk"],
        )

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """(B, C, left + n + right), (B, K) -> (B, C, n); channels are run as batch items."""
        b, c, length = x.shape
        n = length - self.receptive_field + 1
        if n < 1:
            raise ValueError(f"tcn needs more than {self.receptive_field - 1} input samples, got {length}")
        if self.cond is not None:
            cond = self.cond(knobs.to(x.dtype)).repeat_interleave(c, dim=0)
        else:
            cond = x.new_zeros(b * c, self._cond_dim)
        film = self.film(cond).reshape(b * c, len(self.blocks), 2, -1)  # (B, blocks, 2, C)
        h = x.reshape(b * c, 1, 1, length)
        for i, block in enumerate(self.blocks):
            h = block(h, film[:, i, 0] + 1.0, film[:, i, 1])
        y = F.conv2d(h, self.head.weight[..., None], self.head.bias).reshape(b * c, 1, n)
        if self.hparams["output"] == "tanh":
            y = torch.tanh(y)
        if self.hparams["input_skip"]:
            left = self.geometry.left_context
            y = y + x.reshape(b * c, 1, length)[..., left : left + n]
        return y.reshape(b, c, n)
