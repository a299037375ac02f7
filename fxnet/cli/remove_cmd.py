"""`fxnet remove`: undo clipping and distortion with a removal network (or A-SPADE)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from fxnet.cli import options as o

HELP = """Remove clipping and distortion from audio files.

By default each file is scanned: SoX's overdrive, when detected, is undone exactly
(its gain and colour are estimated from the file); otherwise the file is restored
with the `declip` model, which changes only the clipped samples (an unclipped file
comes out unchanged).
Restored peaks can exceed full scale: fixed-point outputs are then scaled down to
-0.1 dBFS (--clip-mode normalize, the default here).

Examples:

  fxnet remove song.wav -o clean.wav

  fxnet remove masters/ -o restored/ --report

  fxnet remove take.wav -o take.aspade.wav --method aspade
"""


def remove(
    inputs: o.Inputs,
    output: o.Output = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=(
        "Removal model: auto (the bundled declip), a registry name, a .safetensors "
        "path or hf://org/repo/file."))] = "auto",
    method: Annotated[str, typer.Option("--method", help=(
        "model (a removal network; with --model auto, SoX overdrive is inverted when detected), aspade (the "
        "A-SPADE sparse declipper, slow; hard clipping only) or sox-overdrive (always fit and invert SoX's "
        "overdrive)."))] = "model",
    aspade_window: Annotated[int, typer.Option("--aspade-window", min=16, help=(
        "A-SPADE frame length in samples (hop = 1/4); 8192 is the declipping survey's default at 44.1 kHz."))] = 8192,
    report: Annotated[bool, typer.Option("--report", help=(
        "Print per file the clipping detected (share of clipped samples, clip level) and the remover used."))] = False,
    suffix: o.Suffix = None,
    template: o.Template = None,
    device: o.Device = "auto",
    batch_size: o.BatchSize = None,
    chunk_seconds: o.ChunkSeconds = None,
    overlap: o.OverlapSeconds = None,
    rate: o.Rate = None,
    bits: o.Bits = None,
    fmt: o.Format = None,
    force: o.Force = False,
    clip_mode: Annotated[str, typer.Option("--clip-mode", help=(
        "Peaks above full scale: normalize (scale the file to -0.1 dBFS peak when a fixed-point output would "
        "clip), clip, soft or error."))] = "normalize",
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    from fxnet.cli.common import plan_jobs
    from fxnet.cli.runner import run_jobs
    from fxnet.process import ProcessOptions, default_device
    from fxnet.restore.pipeline import Remover

    name = method if method in ("aspade", "sox-overdrive") else (model or "auto")
    jobs = plan_jobs(inputs, output, suffix=".clean" if suffix is None else suffix, template=template,
                     model_name=name, as_json=as_json)
    opts = ProcessOptions(device=default_device(device), batch_size=batch_size, chunk_seconds=chunk_seconds,
                          overlap_seconds=overlap, rate=rate, bits=bits, format=fmt, force=force,
                          clip_mode=clip_mode)
    from fxnet.audio import PeakPolicy

    PeakPolicy(clip_mode, "PCM_16", "")  # checks --clip-mode before any work
    remover = Remover(opts, method=method, model=model or "auto", report=report, aspade_window=aspade_window)
    remover.load()
    summary = {"command": "remove", "method": method, "model": name}
    raise typer.Exit(run_jobs(jobs, remover, quiet=quiet, as_json=as_json, summary=summary))
