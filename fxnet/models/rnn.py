"""A GuitarML/Proteus-style recurrent effect model: knobs as constant input channels.

After A. Wright, E.-P. Damskägg, V. Välimäki, "Real-Time Guitar Amplifier Emulation with
Deep Learning" (Applied Sciences, 2020) and the GuitarML Proteus knob captures, from the
description in ``shared/reference/models.md``.

Shapes (B batch, K knobs, H hidden, W = ``warmup``, S = ``segment``, n = m * S)::

    x (B, 1, W + n) --unfold--> m segments (B*m, W + S) with knobs appended as K constant
    channels: (B*m, W + S, 1 + K) --LSTM/GRU(H), zero initial state--> (B*m, W + S, H)
    --keep the last S steps, Linear(H -> 1)--> (B*m, S) [+ x aligned] --> (B, 1, n)

The streaming engine runs chunks independently, so a recurrent state cannot be carried
from one chunk to the next. Instead every segment of ``segment`` output samples starts
from a zero state ``warmup`` samples earlier and the warm-up outputs are discarded. The
segment grid is fixed in file time (the engine's chunks are multiples of ``segment``),
so the output does not depend on the chunk or batch size: chunked == whole-file up to
rounding. The price is ``warmup / segment`` extra recurrent steps; the gain is that all
segments of a chunk (and of a batch) run in parallel, which an RNN on a CPU needs (one
sequence of 441000 steps runs ~15x real time, 32+ in parallel ~100x and more).
``warmup`` must exceed the effect's memory (e.g. a compressor's release); train with the
same values.

``segment=None`` runs each chunk as one sequence after its warm-up instead: cheaper,
but the output then depends on where chunks start (it converges to the whole-file output
once the state has forgotten its zero start).

The recurrence runs on one intra-op thread (``RNN.recurrent_threads``): each time step
is a tiny parallel region, and with two threads the per-step synchronisation costs more
than it saves; when another process holds one of the cores it is catastrophic (measured
here: ~16 ms per time step instead of a few microseconds, as the second thread waits for
a time slice). Run many chunks per batch instead. The backward pass of training is not
covered by this: train recurrent models with ``torch.set_num_threads(1)`` on small
machines.

``cell="lstm"`` is the default: PyTorch runs LSTMs on CPU through oneDNN, 2.5-4.5x faster
than its GRU here (32 x 8192 steps, one thread: LSTM-16 75 ms, GRU-16 340 ms).
``input_skip`` adds the dry input to the output (GuitarML does too).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

import torch
from torch import nn

from fxnet.models.base import FxModel, Geometry

Cell = Literal["lstm", "gru"]


class RNN(FxModel):
    """Recurrent effect model; ``forward(x (B,1,warmup+n), knobs (B,K)) -> (B,1,n)``.

    Hyper-parameters: ``hidden`` (32), ``cell`` ("lstm"/"gru"), ``layers`` (1),
    ``warmup`` (samples of left context run before each segment, 4096), ``segment``
    (output samples per independent sequence, 4096; None = the whole chunk),
    ``input_skip`` (True), ``chunk`` (preferred output samples per engine chunk).
    """

    arch = "rnn"
    #: intra-op threads for the recurrent loop (None: leave torch's setting alone)
    recurrent_threads: int | None = 1

    def __init__(
        self,
        *,
        sample_rate: int = 44100,
        knobs=(),
        hidden: int = 32,
        cell: Cell = "lstm",
        layers: int = 1,
        warmup: int = 4096,
        segment: int | None = 4096,
        input_skip: bool = True,
        chunk: int = 1 << 15,
    ) -> None:
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        if hidden < 1 or layers < 1 or warmup < 0 or (segment is not None and segment < 1):
            raise ValueError("hidden, layers and segment must be positive and warmup >= 0")
        if segment is not None and chunk % segment:
            chunk = max(segment, chunk // segment * segment)
        super().__init__(
            sample_rate=sample_rate, knobs=knobs, hidden=hidden, cell=cell, layers=layers,
            warmup=warmup, segment=segment, input_skip=input_skip, chunk=chunk,
        )
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(1 + self.num_knobs, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    @property
    def geometry(self) -> Geometry:
        h = self.hparams
        return Geometry(
            sample_rate=self.sample_rate,
            left_context=h["warmup"],
            chunk=h["chunk"],
            multiple=h["segment"] or 1,
        )

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """(B, C, warmup + n), (B, K) -> (B, C, n); channels are run as batch items."""
        h = self.hparams
        b, c, length = x.shape
        warm, seg = h["warmup"], h["segment"]
        n = length - warm
        if n < 1 or (seg and n % seg):
            raise ValueError(
                f"rnn needs {warm} + a positive multiple of {seg or 1} input samples, got {length}"
            )
        seg = seg or n
        m = n // seg
        seqs = x.reshape(b * c, length).unfold(-1, warm + seg, seg)  # (B*C, m, W+S)
        seqs = seqs.reshape(b * c * m, warm + seg, 1)
        if self.num_knobs:
            kn = knobs.to(x.dtype).repeat_interleave(c * m, dim=0)  # (B*C*m, K)
            seqs = torch.cat([seqs, kn[:, None, :].expand(-1, warm + seg, -1)], dim=-1)
        with _limit_threads(self.recurrent_threads):
            out, _ = self.rnn(seqs)  # (B*C*m, W+S, H)
        y = self.head(out[:, warm:]).reshape(b, c, n)
        if h["input_skip"]:
            y = y + x[..., warm:]
        return y


@contextmanager
def _limit_threads(n: int | None) -> Iterator[None]:
    """Run the block with at most ``n`` torch intra-op threads, then restore the setting."""
    prev = torch.get_num_threads()
    if n is None or n >= prev:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
