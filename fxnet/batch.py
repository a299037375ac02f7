"""Batch jobs: expand inputs (files, globs, directories, '-'), name outputs, shard ranks.

The CLI turns positional inputs and ``-o`` into a list of ``Job``s; a job that cannot be
planned (missing file, output equal to an input) carries its error so the batch can go on
and report it at the end.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fxnet.errors import UsageError

AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".au", ".caf",
                    ".w64", ".rf64", ".mp3", ".opus"}
_GLOB_CHARS = set("*?[")


@dataclass
class Job:
    input: str
    output: str | None = None
    error: str | None = None


def expand_inputs(items: Sequence[str]) -> list[Job]:
    """Files, globs and directories (their audio files, sorted, not recursive) -> jobs."""
    jobs: list[Job] = []
    for item in items:
        if item == "-":
            jobs.append(Job("-"))
        elif os.path.isdir(item):
            found = sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                jobs.append(Job(item, error=f"{item}: no audio files in this directory"))
            jobs.extend(Job(str(p)) for p in found)
        elif _GLOB_CHARS & set(item) and not os.path.exists(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                jobs.append(Job(item, error=f"{item}: no files match this pattern"))
            jobs.extend(Job(p) for p in found if os.path.isfile(p))
        elif os.path.exists(item):
            jobs.append(Job(item))
        else:
            jobs.append(Job(item, error=f"{item}: no such file"))
    return jobs


def plan_outputs(jobs: list[Job], output: str | None, *, suffix: str, template: str | None,
                 model_name: str) -> list[Job]:
    """Fill in each job's output path.

    One input and ``-o FILE``: that file. Several inputs (or ``-o`` naming an existing
    directory or ending in '/'): ``-o`` is a directory and each output keeps its input's
    name through ``template`` (fields: stem, ext, suffix, model; default
    ``{stem}{suffix}.{ext}``). No ``-o``: outputs go next to their inputs.
    """
    good = [j for j in jobs if j.error is None]
    many = len(jobs) > 1
    out_is_dir = output is not None and output != "-" and (
        many or output.endswith(("/", os.sep)) or os.path.isdir(output))
    if output == "-" and many:
        raise UsageError("-o - (stdout) takes a single input")
    if out_is_dir:
        Path(output).mkdir(parents=True, exist_ok=True)
    if any(j.input == "-" for j in good) and output is None:
        raise UsageError("reading from stdin needs -o FILE or -o - (stdout)")
    tmpl = template or "{stem}{suffix}.{ext}"
    inputs = {os.path.realpath(j.input) for j in good if j.input != "-"}
    taken: dict[str, str] = {}
    for job in good:
        if output is not None and not out_is_dir:
            job.output = output
        else:
            src = Path(job.input if job.input != "-" else "stdin.wav")
            directory = Path(output) if out_is_dir else src.parent
            try:
                name = tmpl.format(stem=src.stem, ext=src.suffix.lstrip(".") or "wav", suffix=suffix,
                                   model=model_name)
            except (KeyError, IndexError, ValueError) as e:
                raise UsageError(f"--template '{tmpl}': unknown field {e}; use stem, ext, suffix, model") from None
            job.output = str(directory / name)
        if job.output != "-":
            real = os.path.realpath(job.output)
            if real in inputs:
                job.error = f"{job.output}: output path equals an input (refusing to overwrite it)"
                continue
            if real in taken:
                job.error = f"{job.output}: also the output of {taken[real]} (use --template to keep names apart)"
                continue
            taken[real] = job.input
    return jobs


def shard(jobs: list[Job]) -> list[Job]:
    """Under torchrun (RANK/WORLD_SIZE set), keep this rank's disjoint share of the jobs."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    if world <= 1:
        return jobs
    return jobs[rank::world]
