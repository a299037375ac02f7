"""``fxnet remove`` for one file: scan it for clipping, pick the remover, run it.

Every file is read once to measure its clipping (:func:`fxnet.restore.detect.detect_clipping`:
the fraction of samples on a plateau at the clip level and that level), which is what
``--report`` prints, and then processed through the streaming engine like ``apply``:

- ``--method model`` (default) runs a removal network. ``--model auto`` picks per file
  (:func:`route`): :data:`AUTO_CLIPPED` when hard clipping is detected; otherwise SoX's
  overdrive, when :func:`fxnet.restore.overdrive.fit` detects it, is inverted exactly
  with the settings it estimated; otherwise :data:`AUTO_OTHER`, or, while that is None,
  nothing: the file passes unchanged. ``--model NAME`` forces one.
- ``--method sox-overdrive`` fits and inverts SoX's overdrive whether or not the fit
  calls it detected.
- ``--method aspade`` runs the A-SPADE declipper (:mod:`fxnet.restore.aspade`) at the
  file's own rate with the clip level detected on the *whole* file (a chunk's own
  maximum would be wrong wherever a chunk holds no clipping). Chunks overlap by one
  A-SPADE window on each side and sit on its hop grid, so the result equals processing
  the file in one piece.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

from fxnet.audio import STDIO, AudioReader
from fxnet.errors import UsageError
from fxnet.models.base import FxModel, Geometry
from fxnet.process import FileProcessor, FileResult, ProcessOptions

Method = Literal["model", "aspade", "sox-overdrive"]
METHODS = ("model", "aspade", "sox-overdrive")
#: The name ``--report`` and ``--json`` give the SoX-overdrive inversion.
INVERSE = "sox-overdrive-inverse"
#: ... and a file that ``--model auto`` found nothing to remove in (it passes unchanged).
NOTHING = "none"
AUTO = "auto"
#: ``--model auto``: the model for files with detected hard clipping, and for the rest.
#: No general remover (soft clipping, saturation, other drives) is good enough to ship
#: yet: the ones trained so far made lightly distorted audio worse (docs/remove.md).
#: Until one is, ``AUTO_OTHER`` is None: such files pass unchanged (running ``declip``
#: over them would let its per-window mask take the 16-bit-rounded peaks of a steady tone
#: for a plateau), and ``--report`` says that nothing was found to remove.
AUTO_CLIPPED = "declip"
AUTO_OTHER: str | None = None
#: Output samples per A-SPADE engine chunk (a multiple of its hop).
ASPADE_CHUNK = 1 << 17


class AspadeModel(FxModel):
    """A-SPADE behind the engine's model contract, with a fixed clip level.

    ``forward(x (B,1,window+n+window)) -> (B,1,n)``; no parameters, nothing to train.
    """

    arch = "aspade"

    def __init__(self, *, sample_rate: int, threshold: float, window: int = 8192, chunk: int = ASPADE_CHUNK,
                 knobs=()):
        if window < 16 or window % 4:
            raise UsageError(f"--aspade-window must be a multiple of 4 and at least 16, got {window}")
        hop = window // 4
        chunk = max(hop, chunk // hop * hop)
        super().__init__(sample_rate=sample_rate, knobs=knobs, threshold=float(threshold), window=window,
                         chunk=chunk)

    @property
    def geometry(self) -> Geometry:
        h = self.hparams
        return Geometry(sample_rate=self.sample_rate, channels=1, left_context=h["window"],
                        right_context=h["window"], chunk=h["chunk"], multiple=h["window"] // 4)

    def forward(self, x: torch.Tensor, knobs: torch.Tensor | None = None) -> torch.Tensor:
        from fxnet.restore.aspade import aspade

        w = self.hparams["window"]
        rows = x[:, 0].detach().cpu().numpy()
        if self.hparams["threshold"] > 0:
            rows = aspade(rows, threshold=self.hparams["threshold"], window=w)
        y = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).to(x.device)
        return y[:, None, w : x.shape[-1] - w]


class MemoryReader:
    """A decoded file held in memory, read like :class:`fxnet.audio.AudioReader` (the
    scan needs all of it anyway; decoding it a second time would cost more)."""

    def __init__(self, path: str, stdin: bytes | None) -> None:
        reader = AudioReader(path, stdin=io.BytesIO(stdin) if stdin is not None else None)
        self.info = reader.info
        self.audio = np.concatenate([b.numpy() for b in reader.blocks(1 << 18)], axis=1)

    def blocks(self, block_frames: int):
        for start in range(0, self.audio.shape[1], block_frames):
            yield torch.from_numpy(self.audio[:, start : start + block_frames])

    def close(self) -> None:
        pass


@dataclass
class Remover:
    """Removes distortion from files; the ``processor`` that ``fxnet.cli.runner`` drives."""

    options: ProcessOptions
    method: Method = "model"
    model: str = AUTO
    report: bool = False
    aspade_window: int = 8192

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}; got '{self.method}'")
        self._processors: dict[str, tuple[FileProcessor, str]] = {}

    def _processor(self, spec: str) -> tuple[FileProcessor, str]:
        if spec not in self._processors:
            from pathlib import Path

            from fxnet.checkpoint import load_model
            from fxnet.registry import resolve_model

            path = resolve_model(spec)
            net, info = load_model(path, device=self.options.device)
            if info.task != "remove":
                raise UsageError(f"model '{spec}' is an effect ('{info.task}' model), not a remover; "
                                 "use 'fxnet apply' for it")
            self._processors[spec] = (FileProcessor(net, options=self.options),
                                      info.meta.get("name") or Path(path).stem)
        return self._processors[spec]

    def load(self) -> None:
        """Resolve an explicitly named model before the first file (fail early); with
        ``auto`` each model is loaded when the first file that needs it comes."""
        if self.method == "model" and self.model != AUTO:
            self._processor(self.model)

    def run(self, input_path: str, output_path: str,
            on_progress: Callable[[int, int], None] | None = None) -> FileResult:
        from fxnet.restore.detect import detect_clipping

        t0 = time.perf_counter()
        reader = MemoryReader(input_path, sys.stdin.buffer.read() if input_path == STDIO else None)
        scan = detect_clipping(reader.audio)
        used, fit = route(reader.audio, reader.info.sample_rate, scan, method=self.method, model=self.model)
        if used in (INVERSE, "aspade", NOTHING):
            net = builtin_remover(used, reader.info.sample_rate, scan, fit, frames=reader.audio.shape[1],
                                  aspade_window=self.aspade_window)
            processor = FileProcessor(net, options=self.options)
        else:
            processor, used = self._processor(used)
        result = processor.run(input_path, output_path, on_progress, reader=reader, t0=t0)
        result.extra.update(method=self.method, model=used, clipping=scan.to_dict())
        if fit is not None:
            result.extra["overdrive"] = fit.to_dict()
        if self.report:
            result.extra["note"] = describe(scan, used, fit)
        return result


#: Under ``--model auto`` a file with less than this share of clipped samples is also
#: checked for SoX's overdrive: SoX clips its own output at ±1, so a loud overdriven file
#: has a few clip plateaus (0.01 % of the samples of a 10-minute synthetic mix through
#: ``overdrive 30``), yet the overdrive is the damage. Hard clipping that matters clips
#: far more (2-3 % at 20 dB input SDR) and skips the fit; the detector rejects hard
#: clipping anyway (bench_remove.py, part "detection": 0 of 17).
SPARSE_CLIPPING = 0.005


def route(audio: np.ndarray, sample_rate: int, scan, *, method: str = "model", model: str = AUTO,
          fit=None) -> tuple[str, object]:
    """What removes this file: :data:`INVERSE`, ``"aspade"``, :data:`NOTHING` or a model
    spec; and the SoX-overdrive fit when one was needed (``fit``: one already made).

    ``audio`` (channels, n) is the decoded file; ``scan`` its :func:`detect_clipping`.
    """
    sparse = not scan.clipped or scan.clipped_fraction < SPARSE_CLIPPING
    if method == "sox-overdrive" or (method == "model" and model == AUTO and sparse):
        if fit is None:
            from fxnet.restore.overdrive import fit as fit_overdrive

            fit = fit_overdrive(audio, sample_rate)
        if fit.detected or method == "sox-overdrive":
            return INVERSE, fit
    if method == "aspade":
        return "aspade", fit
    if model != AUTO:
        return model, fit
    return (AUTO_CLIPPED if scan.clipped else AUTO_OTHER) or NOTHING, fit


def builtin_remover(name: str, sample_rate: int, scan, fit, *, frames: int, aspade_window: int = 8192) -> FxModel:
    """The engine model for a :func:`route` result that is not a network, at the file's rate."""
    if name == INVERSE:
        from fxnet.restore.overdrive import OverdriveInverse

        return OverdriveInverse(sample_rate=sample_rate, gain_db=fit.gain_db, colour=fit.colour, frames=frames)
    if name == "aspade":
        threshold = scan.threshold if scan.clipped else 0.0  # 0: nothing to restore, pass through
        return AspadeModel(sample_rate=sample_rate, threshold=threshold, window=aspade_window)
    if name == NOTHING:
        from fxnet.models.simple import Gain

        return Gain(sample_rate=sample_rate)  # 0 dB: every sample passes exactly
    raise ValueError(f"not a built-in remover: {name!r}")


def describe(scan, used: str, fit=None) -> str:
    """One line for ``--report``: what was detected and what removed it."""
    import math

    if used == INVERSE:
        what = "SoX overdrive detected" if fit.detected else "SoX overdrive assumed (--method sox-overdrive)"
        return (f"{what}: gain {fit.gain_db:.1f} dB, colour {fit.colour:.0f} (prediction residual "
                f"{fit.ratio:.1f}x lower once inverted); inverted exactly")
    if scan.total_samples == 0 or scan.threshold <= 0:
        return f"silent; {used}"
    level = 20.0 * math.log10(scan.threshold)
    if scan.clipped:
        found = (f"clipped: {100.0 * scan.clipped_fraction:.3g} % of samples "
                 f"({scan.clipped_samples} of {scan.total_samples}) at ±{scan.threshold:.4g} ({level:.1f} dBFS)")
    else:
        found = f"no hard clipping detected (peak {level:.1f} dBFS)"
        if used == NOTHING:
            return f"{found}; nothing to remove, left as it was"
    return f"{found}; removed with {used}"
