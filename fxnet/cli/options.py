"""Option types shared by the processing commands (apply, remove)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

Inputs = Annotated[List[str], typer.Argument(help="Input files, globs or directories; '-' reads stdin.",
                                             show_default=False)]
Output = Annotated[Optional[str], typer.Option("-o", "--output", help=(
    "Output file (one input) or directory (several inputs); '-' writes stdout. "
    "Default: next to each input."))]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help=(
    "Registry name (see 'fxnet models list'), a .safetensors path, or hf://org/repo/file[@rev]."))]
Suffix = Annotated[Optional[str], typer.Option("--suffix", help="Added to the input's stem in output names.")]
Template = Annotated[Optional[str], typer.Option("--template", help=(
    "Output name template, fields {stem} {ext} {suffix} {model}; default '{stem}{suffix}.{ext}'."))]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda[:N] or mps.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help=(
    "Chunks per model call (default: about 2 M input samples per call, at most 8)."))]
ChunkSeconds = Annotated[Optional[float], typer.Option("--chunk-seconds", help="Override the model's chunk length.")]
OverlapSeconds = Annotated[Optional[float], typer.Option("--overlap", help="Crossfade between chunks, in seconds.")]
Rate = Annotated[Optional[int], typer.Option("--rate", "-r", min=1, help="Output sample rate (default: the input's).")]
Bits = Annotated[Optional[str], typer.Option("--bits", "-b", help="Output sample format: 16, 24, 32 or 32f (default: the input's).")]
Format = Annotated[Optional[str], typer.Option("--format", "-t", help="Output format (wav, flac, ogg, aiff...; default: from the name).")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
ClipModeOpt = Annotated[str, typer.Option("--clip-mode", help=(
    "Peaks above full scale: clip (hard clip in integer formats; counted), soft (limit smoothly "
    "above -1 dBFS), error (fail the file)."))]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
