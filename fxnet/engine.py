"""Streaming chunked overlap-add inference: run a model over audio of any length.

Blocks of audio (channels, frames) come in, blocks of processed audio come out, as they
complete, with memory bounded by the model's geometry and the batch size, never by the
file's length. Steps (after demucs' `apply.py` idea, written for declared geometry):

1. The input is seen as ``left_context`` zeros, the audio, then zeros. Chunk k produces
   model outputs for input positions ``[s_k, s_k + n)`` with ``s_k = latency + k * hop``,
   ``hop = n - overlap``; it reads ``[s_k - left_context, s_k + n + right_context)``.
   Neighbouring chunks read real neighbouring audio; zeros appear only past the edges.
2. Chunks are stacked into a batch (channels of a mono model are batch items too) and
   run on the device under inference mode.
3. Overlaps are crossfaded with complementary linear ramps that sum to one; the first
   chunk has no fade-in and the last chunk's fade-out lies beyond the end of the file.
4. Output position ``s`` (model time) is file position ``s - latency``: the latency is
   compensated, so the output is sample-aligned and exactly as long as the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch

from fxnet.errors import UsageError
from fxnet.models.base import Geometry

#: Knob values for a chunk: given the chunk's centre time in seconds, return (K,) values.
KnobFn = Callable[[float], Sequence[float]]


@dataclass
class EngineStats:
    frames_in: int = 0
    frames_out: int = 0
    chunks: int = 0
    batches: int = 0


class StreamingEngine:
    """Runs ``model`` over a stream of (channels, frames) float32 blocks.

    ``knobs`` is either a sequence of K normalised values (constant) or a function of
    time (automation, evaluated at each chunk's centre). ``total_frames``, when known,
    lets the engine shrink the chunk for files shorter than one chunk.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        geometry: Geometry | None = None,
        *,
        knobs: Sequence[float] | KnobFn = (),
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        dry_wet: float = 1.0,
        gain_db: float = 0.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model = model
        self.geometry = geometry or model.geometry
        g = self.geometry
        if g.chunk < 1 or g.chunk % g.multiple:
            raise UsageError(f"chunk of {g.chunk} samples is not a positive multiple of {g.multiple}")
        if batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        self.knobs = knobs
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if not 0.0 <= dry_wet <= 1.0:
            raise UsageError(f"--dry-wet must be in [0, 1], got {dry_wet}")
        self.wet = float(dry_wet)
        self.gain = 10.0 ** (gain_db / 20.0)
        self.dtype = dtype
        self.stats = EngineStats()

    # -- knobs -------------------------------------------------------------------
    def _knobs_for(self, starts: list[int], n: int) -> torch.Tensor:
        sr = self.geometry.sample_rate
        if callable(self.knobs):
            rows = [list(self.knobs((s + n / 2 - self.geometry.latency) / sr)) for s in starts]
        else:
            rows = [list(self.knobs)] * len(starts)
        k = torch.tensor(rows, dtype=self.dtype)
        return k.reshape(len(starts), -1)

    # -- the model call ----------------------------------------------------------
    def _run(self, batch: torch.Tensor, knobs: torch.Tensor, n: int) -> torch.Tensor:
        """(B, C, L) -> (B, C, n) on CPU, float32."""
        b, c, length = batch.shape
        mono_model = self.geometry.channels == 1
        if mono_model and c > 1:
            batch = batch.reshape(b * c, 1, length)
            knobs = knobs.repeat_interleave(c, dim=0)
        with torch.inference_mode():
            y = self.model(batch.to(self.device, self.dtype), knobs.to(self.device))
        if y.shape[-1] != n:
            raise RuntimeError(
                f"model returned {y.shape[-1]} samples for a chunk of {n}: its declared geometry is wrong"
            )
        return y.reshape(b, c, n).to("cpu", torch.float32)

    # -- streaming ---------------------------------------------------------------
    def process(self, blocks: Iterable[torch.Tensor], *, total_frames: int | None = None) -> Iterator[torch.Tensor]:
        """Yield output blocks (channels, frames); their total length equals the input's."""
        g = self.geometry
        n = g.chunk
        if total_frames is not None and 0 < total_frames < n:
            n = max(g.multiple, math.ceil(total_frames / g.multiple) * g.multiple)
        overlap = min(max(g.overlap, 0), n // 2)
        hop = n - overlap
        left, right, lat = g.left_context, g.right_context, g.latency
        fade_in = (torch.arange(overlap, dtype=torch.float32) + 0.5) / max(overlap, 1)
        fade_out = 1.0 - fade_in

        it = iter(blocks)
        buf: torch.Tensor | None = None  # input positions [buf_start, buf_start + buf.shape[1])
        pending: list[torch.Tensor] = []  # blocks read but not yet joined onto buf
        pending_frames = 0
        buf_start = -left
        channels = 0
        total: int | None = None  # input length, known at end of stream
        next_start = lat  # s of the next chunk to run
        first_chunk = True
        acc: torch.Tensor | None = None  # model-time positions [acc_start, acc_start + acc.shape[1])
        acc_start = lat

        def buffered_end() -> int:
            return buf_start + (0 if buf is None else buf.shape[1]) + pending_frames

        def chunk_ready(s: int) -> bool:
            if total is not None:
                return s < lat + total
            return buf is not None and s + n + right <= buffered_end()

        while True:
            # 1. Read until a full batch of chunks is ready (or the stream ends).
            while total is None:
                if buf is not None and next_start + (self.batch_size - 1) * hop + n + right <= buffered_end():
                    break
                block = next(it, None)
                if block is None:
                    if buf is None:  # empty stream
                        return
                    total = self.stats.frames_in
                    pending.append(torch.zeros(channels, lat + n + right))
                    pending_frames += pending[-1].shape[1]
                    break
                if block.ndim != 2:
                    raise ValueError("blocks must be (channels, frames)")
                if buf is None:
                    channels = block.shape[0]
                    if g.channels not in (1, channels):
                        raise UsageError(
                            f"model expects {g.channels} channel(s) but the audio has {channels}"
                        )
                    buf = torch.zeros(channels, left, dtype=torch.float32)
                if block.shape[1] == 0:
                    continue
                self.stats.frames_in += block.shape[1]
                pending.append(block.to(torch.float32))
                pending_frames += block.shape[1]
            if pending:  # one copy per batch, not per block
                buf = torch.cat([buf, *pending], dim=1)
                pending.clear()
                pending_frames = 0

            # 2. Gather a batch of ready chunks.
            starts: list[int] = []
            s = next_start
            while len(starts) < self.batch_size and chunk_ready(s):
                starts.append(s)
                s += hop
            if not starts:
                break
            views = [buf[:, st - left - buf_start : st + n + right - buf_start] for st in starts]
            y = self._run(torch.stack(views), self._knobs_for(starts, n), n)
            self.stats.batches += 1
            self.stats.chunks += len(starts)

            # 3. Overlap-add into the accumulator.
            end = starts[-1] + n
            if overlap == 0 and (acc is None or acc.shape[1] == 0) and acc_start == starts[0]:
                # Chunks tile the output exactly: lay them side by side, one copy.
                acc = y.permute(1, 0, 2).reshape(channels, len(starts) * n)
            else:
                if acc is None:
                    acc = torch.zeros(channels, end - acc_start)
                elif acc_start + acc.shape[1] < end:
                    acc = torch.cat([acc, torch.zeros(channels, end - acc_start - acc.shape[1])], dim=1)
                for i, st in enumerate(starts):
                    out = y[i]
                    if overlap:
                        out = out.clone()
                        if not first_chunk:
                            out[:, :overlap] *= fade_in
                        out[:, n - overlap :] *= fade_out
                    first_chunk = False
                    acc[:, st - acc_start : st - acc_start + n] += out
            next_start = s

            # 4. Emit what no later chunk touches; drop input no later chunk reads.
            final_upto = next_start if total is None else min(next_start, lat + total)
            if total is not None and not chunk_ready(next_start):
                final_upto = lat + total
            k = final_upto - acc_start
            if k > 0:
                block_out = acc[:, :k]
                if self.wet < 1.0:  # parallel mix with the aligned dry input
                    d0 = acc_start - lat - buf_start
                    block_out = self.wet * block_out + (1.0 - self.wet) * buf[:, d0 : d0 + k]
                if self.gain != 1.0:
                    block_out = block_out * self.gain
                acc = acc[:, k:]
                acc_start = final_upto
                self.stats.frames_out += block_out.shape[1]
                yield block_out
            keep_from = next_start - left
            if self.wet < 1.0:
                keep_from = min(keep_from, acc_start - lat)
            drop = keep_from - buf_start
            if drop > 0:
                buf = buf[:, drop:]
                buf_start += drop
            if total is not None and not chunk_ready(next_start):
                break


def process_tensor(
    model: torch.nn.Module,
    audio: torch.Tensor,
    *,
    knobs: Sequence[float] | KnobFn = (),
    geometry: Geometry | None = None,
    block_frames: int = 1 << 16,
    batch_size: int = 8,
    device: str = "cpu",
    **options,
) -> torch.Tensor:
    """Run the engine over an in-memory (channels, frames) tensor; returns the same shape."""
    engine = StreamingEngine(model, geometry, knobs=knobs, device=device, batch_size=batch_size, **options)
    blocks = (audio[:, i : i + block_frames] for i in range(0, audio.shape[1], block_frames))
    out = list(engine.process(blocks, total_frames=audio.shape[1]))
    if not out:
        return audio.new_zeros(audio.shape)
    return torch.cat(out, dim=1)
