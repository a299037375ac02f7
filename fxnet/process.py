"""One file through one model: read, resample, stream through the engine, write.

``FileProcessor`` holds a loaded model and the options; ``run(input, output)`` processes
one file end to end (decode -> resample to the model's rate -> engine -> resample back
-> peak policy -> atomic write) and returns a ``FileResult``. Memory does not depend on
the file's length: every stage is a generator of blocks.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import BinaryIO, Callable, Sequence

import torch

from fxnet.audio import (AtomicAudioWriter, AudioReader, ClipMode, PeakPolicy, fit_length, format_for,
                         resample_blocks, subtype_for)
from fxnet.constants import DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_FRAMES
from fxnet.engine import KnobFn, StreamingEngine
from fxnet.errors import UsageError
from fxnet.models.base import Geometry


@dataclass
class ProcessOptions:
    device: str = "cpu"
    batch_size: int | None = None  #: chunks per model call; None: :func:`auto_batch_size`
    chunk_seconds: float | None = None
    overlap_seconds: float | None = None
    rate: int | None = None  #: output sample rate (default: the input's)
    bits: str | None = None
    format: str | None = None
    force: bool = False
    clip_mode: ClipMode = "clip"
    dry_wet: float = 1.0
    gain_db: float = 0.0
    block_frames: int = DEFAULT_BLOCK_FRAMES


@dataclass
class FileResult:
    input: str
    output: str | None = None
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0  #: audio duration
    wall_seconds: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    over_full_scale: int = 0  #: output samples beyond ±1 (clipped in integer formats)
    peak: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Audio seconds per wall second (× real time)."""
        return self.seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["speed_x_realtime"] = round(self.speed, 2) if self.wall_seconds > 0 else None
        return d


#: Without --batch-size, a batch holds about this many input samples (all channels):
#: measured on 2 cores, la2a's 1.3 M-sample chunks of a stereo file ran 1.8x faster one or
#: two at a time than eight at a time (cache), and declip's 0.28 M-sample stereo chunks
#: 1.2x faster two at a time, while comp4c's mono chunks (0.28 M samples) want 7-8.
BATCH_SAMPLES = 1 << 21


def auto_batch_size(geometry: Geometry, channels: int) -> int:
    """Chunks per model call for ``channels``-channel audio: about :data:`BATCH_SAMPLES`
    input samples per call, between 1 and ``DEFAULT_BATCH_SIZE``."""
    per_chunk = (geometry.chunk + geometry.left_context + geometry.right_context) * channels
    return max(1, min(DEFAULT_BATCH_SIZE, BATCH_SAMPLES // max(1, per_chunk)))


#: Without --chunk-seconds, a chunk is at least this many times the model's left context,
#: so that re-reading the context costs at most a quarter more work.
MIN_CHUNK_PER_CONTEXT = 4


def engine_geometry(model_geometry: Geometry, options: ProcessOptions) -> Geometry:
    sr = model_geometry.sample_rate
    chunk = None if options.chunk_seconds is None else max(1, int(round(options.chunk_seconds * sr)))
    if chunk is None and model_geometry.chunk < MIN_CHUNK_PER_CONTEXT * model_geometry.left_context:
        m = model_geometry.multiple
        chunk = -(-MIN_CHUNK_PER_CONTEXT * model_geometry.left_context // m) * m
    overlap = None if options.overlap_seconds is None else max(0, int(round(options.overlap_seconds * sr)))
    if chunk is not None and chunk <= 0:
        raise UsageError("--chunk-seconds must be positive")
    return model_geometry.with_overrides(chunk=chunk, overlap=overlap)


class FileProcessor:
    """Runs a loaded model over files with fixed knobs/options."""

    def __init__(self, model: torch.nn.Module, *, knobs: Sequence[float] | KnobFn = (),
                 options: ProcessOptions | None = None) -> None:
        self.model = model
        self.options = options or ProcessOptions()
        self.geometry = engine_geometry(model.geometry, self.options)
        self.knobs = knobs

    def run(self, input_path: str, output_path: str,
            on_progress: Callable[[int, int], None] | None = None, *, stdin: BinaryIO | None = None,
            reader=None, t0: float | None = None) -> FileResult:
        """Process one file. ``on_progress(frames_done, frames_total)`` at input rate.

        ``stdin``: the bytes of ``-`` when the caller has read them already; ``reader``:
        an already-open reader of ``input_path`` (``.info``, ``.blocks(n)``, ``.close()``),
        e.g. audio the caller decoded. ``t0``: when the caller started on this file (for
        the wall time it reports).
        """
        opt = self.options
        t0 = time.perf_counter() if t0 is None else t0
        reader = reader if reader is not None else AudioReader(input_path, stdin=stdin)
        info = reader.info
        result = FileResult(input=str(input_path), output=str(output_path), sample_rate=info.sample_rate,
                            channels=info.channels, seconds=info.seconds)
        geometry = self.geometry
        if getattr(self.model, "any_rate", False) and geometry.sample_rate != info.sample_rate:
            geometry = replace(geometry, sample_rate=info.sample_rate)  # the model runs at the file's rate
        model_sr = geometry.sample_rate
        out_sr = opt.rate or info.sample_rate
        fmt = format_for(output_path, opt.format, info.format)
        subtype = subtype_for(fmt, opt.bits, info.subtype)
        policy = PeakPolicy(opt.clip_mode, subtype, str(output_path))
        channels = info.channels
        model_channels = self.geometry.channels
        if model_channels > 1 and channels not in (1, model_channels):
            reader.close()
            raise UsageError(f"model expects {model_channels} channels, the file has {channels}")

        def source():
            done = 0
            for block in reader.blocks(opt.block_frames):
                done += block.shape[1]
                if on_progress:
                    on_progress(done, info.frames)
                if model_channels > 1 and block.shape[0] == 1:
                    block = block.expand(model_channels, -1)
                yield block

        work_channels = max(channels, model_channels if model_channels > 1 else channels)
        batch_size = opt.batch_size or auto_batch_size(geometry, work_channels)
        engine = StreamingEngine(self.model, geometry, knobs=self.knobs, device=opt.device,
                                 batch_size=batch_size, dry_wet=opt.dry_wet, gain_db=opt.gain_db)
        model_frames = int(round(info.frames * model_sr / info.sample_rate))
        stream = resample_blocks(source(), info.sample_rate, model_sr, work_channels)
        stream = engine.process(stream, total_frames=model_frames)
        stream = resample_blocks(stream, model_sr, out_sr, work_channels)
        out_frames = info.frames if out_sr == info.sample_rate else int(round(info.frames * out_sr / info.sample_rate))
        stream = fit_length(stream, out_frames)
        if opt.clip_mode == "normalize":
            stream = self._normalized(stream, policy, result)
        with AtomicAudioWriter(output_path, sample_rate=out_sr, channels=work_channels, fmt=fmt,
                               subtype=subtype, force=opt.force) as writer:
            for block in stream:
                writer.write(policy(block))
            writer.commit()
        result.over_full_scale = policy.over
        result.peak = round(policy.peak, 6)
        result.wall_seconds = time.perf_counter() - t0
        return result


    @staticmethod
    def _normalized(stream, policy: PeakPolicy, result: FileResult):
        """``--clip-mode normalize``: hold the output, and if it would exceed full scale in
        a fixed-point format, scale the whole file so its peak sits at -0.1 dBFS.

        Restored peaks (declipping) legitimately exceed the clipped level; re-clipping them
        would undo the work. This holds one file's output in memory (float32).
        """
        blocks = list(stream)
        peak = max((float(b.abs().amax()) for b in blocks if b.numel()), default=0.0)
        if peak > 1.0 and not policy.float_output:
            scale = NORMALIZE_PEAK / peak
            result.extra["normalized_db"] = round(20.0 * math.log10(scale), 2)
            blocks = [b * scale for b in blocks]
        return iter(blocks)


#: Peak after ``--clip-mode normalize`` scales a file down: -0.1 dBFS.
NORMALIZE_PEAK = 10.0 ** (-0.1 / 20.0)


def default_device(spec: str = "auto") -> str:
    """Resolve --device: auto picks cuda (LOCAL_RANK under torchrun), then mps, then cpu."""
    import os

    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: no CUDA GPU is available (use --device cpu or auto)")
        index = int(spec.split(":", 1)[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return spec
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--device mps: Apple Metal is not available here")
        return spec
    if spec == "cpu":
        return spec
    raise UsageError(f"--device must be auto, cpu, cuda[:N] or mps, got '{spec}'")


__all__ = ["FileProcessor", "FileResult", "ProcessOptions", "auto_batch_size", "default_device", "engine_geometry"]
