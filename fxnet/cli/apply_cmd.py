"""`fxnet apply`: run a knob-conditioned effect model over files."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from fxnet.cli import options as o

#: Chunk length when knobs are automated: the knobs change at most this often.
AUTOMATION_CHUNK_SECONDS = 0.1

HELP = """Apply a learned effect to audio files.

Examples:

  fxnet apply in.wav -o out.wav --model la2a --knobs 0.3,0.7

  fxnet apply takes/*.wav -o processed/ --model comp4c --knob threshold=-20dB

  fxnet apply in.wav -o out.wav --model la2a --knobs-file moves.csv
"""


def apply(
    inputs: o.Inputs,
    output: o.Output = None,
    model: o.Model = None,
    knobs: Annotated[Optional[str], typer.Option("--knobs", "-k", help=(
        "Comma-separated knob values normalised to 0-1, in the model's order "
        "(see 'fxnet models info MODEL'); missing ones take their defaults."))] = None,
    knob: Annotated[Optional[List[str]], typer.Option("--knob", help=(
        "NAME=VALUE, repeatable; VALUE normalised or with the knob's unit (e.g. threshold=-20dB)."))] = None,
    knobs_file: Annotated[Optional[str], typer.Option("--knobs-file", help=(
        "CSV knob automation: 'time,<knob>,...' rows (seconds, values as for --knob), "
        "interpolated linearly; evaluated per chunk (0.1 s unless --chunk-seconds)."))] = None,
    dry_wet: Annotated[float, typer.Option("--dry-wet", min=0.0, max=1.0, help="Wet share of a parallel mix (1 = fully processed).")] = 1.0,
    gain_db: Annotated[float, typer.Option("--gain-db", help="Output trim in dB.")] = 0.0,
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
    clip_mode: o.ClipModeOpt = "clip",
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    from fxnet.cli.common import load_for_processing, plan_jobs
    from fxnet.cli.runner import run_jobs
    from fxnet.errors import UsageError
    from fxnet.knobs import load_automation, resolve_knobs

    if model is None:
        raise UsageError("--model is required (see 'fxnet models list')")
    jobs = plan_jobs(inputs, output, suffix=".fx" if suffix is None else suffix, template=template,
                     model_name=model, as_json=as_json)
    if knobs_file is not None and chunk_seconds is None:
        chunk_seconds = AUTOMATION_CHUNK_SECONDS
    processor, info, name = load_for_processing(
        model, device=device, batch_size=batch_size, chunk_seconds=chunk_seconds, overlap=overlap,
        rate=rate, bits=bits, fmt=fmt, force=force, clip_mode=clip_mode, dry_wet=dry_wet, gain_db=gain_db)
    values = resolve_knobs(info.knobs, knobs, knob or [])
    processor.knobs = values.values if knobs_file is None else load_automation(knobs_file, values)
    summary = {"command": "apply", "model": name, "knobs": values.physical(),
               "knobs_normalised": values.as_dict(), "knobs_file": knobs_file}
    raise typer.Exit(run_jobs(jobs, processor, quiet=quiet, as_json=as_json, summary=summary))
