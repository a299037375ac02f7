"""Audio files in and out: streaming reads, atomic writes, resampling, peak policy.

One audio contract everywhere: float32 tensors (channels, frames) plus an explicit
sample rate. Reading and writing go through soundfile (libsndfile: WAV, FLAC, OGG, AIFF,
...). Outputs are written to a temporary file in the target directory and renamed into
place only when complete, so an interrupted or failed run never leaves a partial file.

Peak policy (``clip_mode``), for samples beyond full scale (|x| > 1):
- ``clip`` (default): integer outputs are hard-clipped to [-1, 1]; float outputs keep
  the values. Either way the number of such samples is counted and reported.
- ``soft``: a memoryless soft limiter above -1 dBFS (identity below it), then as clip.
- ``error``: the file fails with an error instead.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Literal

import numpy as np
import torch

from fxnet.errors import AudioError, OutputError, UsageError

ClipMode = Literal["clip", "soft", "error", "normalize"]
BITS_TO_SUBTYPE = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "32f": "FLOAT", "64f": "DOUBLE", "8": "PCM_U8"}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III"}
_EXT_FORMAT = {
    "wav": "WAV", "wave": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "aif": "AIFF",
    "aiff": "AIFF", "aifc": "AIFF", "au": "AU", "caf": "CAF", "w64": "W64", "rf64": "RF64",
    "mp3": "MP3", "opus": "OGG",
}
STDIO = "-"


def _sf():
    import soundfile

    return soundfile


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


class AudioReader:
    """Reads an audio file (or stdin, ``-``) block by block as (channels, frames) float32."""

    def __init__(self, path: str | Path, *, stdin: BinaryIO | None = None) -> None:
        sf = _sf()
        self.name = str(path)
        try:
            if self.name == STDIO:
                data = (stdin or sys.stdin.buffer).read()
                if not data:
                    raise AudioError("no audio on standard input", path="<stdin>")
                self._file = sf.SoundFile(io.BytesIO(data))
            else:
                p = Path(path)
                if p.is_dir():
                    raise AudioError("is a directory, not an audio file", path=p)
                if not p.exists():
                    raise AudioError("no such file", path=p)
                if not os.access(p, os.R_OK):
                    raise AudioError("not readable (permission denied)", path=p)
                self._file = sf.SoundFile(str(p))
        except sf.LibsndfileError as e:
            raise AudioError(f"cannot decode audio ({_short(e)})", path=self.name) from None
        except (RuntimeError, TypeError) as e:
            raise AudioError(f"cannot decode audio ({_short(e)})", path=self.name) from None
        f = self._file
        self.info = AudioInfo(f.samplerate, f.channels, f.frames, f.format, f.subtype)
        if self.info.frames == 0:
            f.close()
            raise AudioError("contains no audio (0 frames)", path=self.name)

    def blocks(self, block_frames: int) -> Iterator[torch.Tensor]:
        """Yield (channels, frames) float32 tensors; NaN/Inf samples are an AudioError."""
        sf = _sf()
        start = 0
        try:
            while True:
                try:
                    data = self._file.read(block_frames, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as e:
                    raise AudioError(f"read failed at frame {start} ({_short(e)})", path=self.name) from None
                if data.shape[0] == 0:
                    break
                if not np.isfinite(data).all():
                    bad = int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0]) + start
                    raise AudioError(f"contains NaN or Inf samples (first at frame {bad})", path=self.name)
                start += data.shape[0]
                yield torch.from_numpy(np.ascontiguousarray(data.T))
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.replace("Error opening", "error opening")[:200]


def format_for(path: str | Path, explicit: str | None, fallback: str) -> str:
    """The soundfile format for an output: --format, else the extension, else the input's."""
    if explicit:
        fmt = _EXT_FORMAT.get(explicit.lower().lstrip("."), explicit.upper())
    else:
        ext = Path(str(path)).suffix.lower().lstrip(".")
        fmt = _EXT_FORMAT.get(ext, fallback) if ext else fallback
    if fmt not in _sf().available_formats():
        raise UsageError(f"unsupported output format '{explicit or fmt}'")
    return fmt


def subtype_for(fmt: str, bits: str | None, input_subtype: str | None) -> str:
    """--bits wins; else keep the input's subtype when the format allows it."""
    sf = _sf()
    if bits:
        if bits not in BITS_TO_SUBTYPE:
            raise UsageError(f"--bits must be one of {', '.join(BITS_TO_SUBTYPE)}, got '{bits}'")
        subtype = BITS_TO_SUBTYPE[bits]
        if not sf.check_format(fmt, subtype):
            raise UsageError(f"format {fmt} cannot store --bits {bits}")
        return subtype
    if input_subtype and sf.check_format(fmt, input_subtype):
        return input_subtype
    return sf.default_subtype(fmt)


class PeakPolicy:
    """Applies ``clip_mode`` to output blocks and counts samples beyond full scale."""

    def __init__(self, mode: ClipMode, subtype: str, name: str) -> None:
        if mode not in ("clip", "soft", "error", "normalize"):
            raise UsageError(f"--clip-mode must be clip, soft, error or normalize, got '{mode}'")
        self.mode = mode
        self.float_output = subtype in _FLOAT_SUBTYPES
        self.name = name
        self.over = 0
        self.peak = 0.0

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        if self.mode == "soft":
            block = soft_limit(block)
        peak = float(block.abs().amax()) if block.numel() else 0.0
        self.peak = max(self.peak, peak)
        if peak <= 1.0:  # the common case: one pass over the block
            return block
        over = int((block.abs() > 1.0).sum())
        if self.mode == "error":
            raise AudioError(
                f"output exceeds full scale ({over} samples in this block; peak {self.peak:.3f}); "
                "use --clip-mode clip or soft, or --gain-db to lower it",
                path=self.name,
            )
        self.over += over
        return block if self.float_output else block.clamp(-1.0, 1.0)


def soft_limit(x: torch.Tensor, threshold_db: float = -1.0) -> torch.Tensor:
    """Identity below the threshold; above, a tanh knee that approaches ±1 smoothly."""
    t = 10.0 ** (threshold_db / 20.0)
    a = x.abs()
    knee = t + (1.0 - t) * torch.tanh((a - t) / (1.0 - t))
    return torch.where(a > t, knee * x.sign(), x)


class AtomicAudioWriter:
    """Writes to a temporary file beside the target; ``commit()`` renames it into place.

    For ``-`` (stdout), the finished temporary file is copied to stdout on commit.
    ``abort()`` (or leaving the context with an exception) removes the temporary file.
    """

    def __init__(self, path: str | Path, *, sample_rate: int, channels: int, fmt: str, subtype: str,
                 force: bool = False, stdout: BinaryIO | None = None) -> None:
        sf = _sf()
        self.path = str(path)
        self.to_stdout = self.path == STDIO
        self._stdout = stdout
        if self.to_stdout:
            directory = Path(tempfile.gettempdir())
            stem = "stdout"
        else:
            target = Path(self.path)
            if target.exists() and not force:
                raise OutputError("already exists (use --force to overwrite)", path=target)
            if target.is_dir():
                raise OutputError("is a directory", path=target)
            directory = target.parent if str(target.parent) else Path(".")
            if not directory.is_dir():
                raise OutputError("directory does not exist", path=directory)
            if not os.access(directory, os.W_OK):
                raise OutputError("directory is not writable", path=directory)
            stem = target.name
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".fxnet-partial", dir=directory)
        os.close(fd)
        self.tmp = Path(tmp)
        try:
            self._file = sf.SoundFile(str(self.tmp), "w", samplerate=sample_rate, channels=channels,
                                      format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {fmt}/{subtype} ({_short(e)})", path=self.path) from None
        self.frames = 0

    def write(self, block: torch.Tensor) -> None:
        self._file.write(block.T.contiguous().numpy())
        self.frames += block.shape[1]

    def commit(self) -> None:
        self._file.close()
        try:
            if self.to_stdout:
                out = self._stdout or sys.stdout.buffer
                with open(self.tmp, "rb") as f:
                    while chunk := f.read(1 << 20):
                        out.write(chunk)
                out.flush()
                self.tmp.unlink(missing_ok=True)
            else:
                os.replace(self.tmp, self.path)
        except OSError as e:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write output ({e.strerror or e})", path=self.path) from None

    def abort(self) -> None:
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - best effort while failing
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicAudioWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def resample_blocks(blocks: Iterator[torch.Tensor], rate_in: int, rate_out: int, channels: int,
                    quality: str = "HQ") -> Iterator[torch.Tensor]:
    """Stream-resample (channels, frames) blocks with soxr; output is aligned with the input."""
    if rate_in == rate_out:
        yield from blocks
        return
    import soxr

    stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality=quality)
    pending = next(blocks, None)
    while pending is not None:
        nxt = next(blocks, None)
        out = stream.resample_chunk(pending.T.contiguous().numpy(), last=nxt is None)
        if out.shape[0]:
            yield torch.from_numpy(np.ascontiguousarray(out.T))
        pending = nxt


def fit_length(blocks: Iterator[torch.Tensor], frames: int) -> Iterator[torch.Tensor]:
    """Trim or zero-pad a stream so it holds exactly ``frames`` frames."""
    done = 0
    channels = None
    for b in blocks:
        channels = b.shape[0]
        take = min(b.shape[1], frames - done)
        if take > 0:
            yield b[:, :take]
            done += take
    if done < frames and channels is not None:
        yield torch.zeros(channels, frames - done)


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """Read a whole (short) file as (channels, frames) float32; for tests and tools."""
    r = AudioReader(path)
    return torch.cat(list(r.blocks(1 << 20)), dim=1), r.info.sample_rate


def write_audio(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int,
                subtype: str | None = None, force: bool = True) -> None:
    """Write (channels, frames) audio atomically; for tests and tools."""
    t = torch.as_tensor(audio, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None]
    fmt = format_for(path, None, "WAV")
    with AtomicAudioWriter(path, sample_rate=sample_rate, channels=t.shape[0], fmt=fmt,
                           subtype=subtype or _sf().default_subtype(fmt), force=force) as w:
        w.write(t)
        w.commit()


def duration_text(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:05.2f}" if m else f"{s:.2f}s"


__all__ = ["AudioInfo", "AudioReader", "AtomicAudioWriter", "PeakPolicy", "resample_blocks",
           "fit_length", "read_audio", "write_audio", "format_for", "subtype_for"]
