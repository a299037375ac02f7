"""Runs a batch of jobs through a FileProcessor with progress, summary and failure report."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from fxnet.batch import Job
from fxnet.errors import FxnetError
from fxnet.process import FileProcessor, FileResult


def _duration_of(path: str):
    """Return frames -> seconds for this file (for the live speed readout)."""
    try:
        import soundfile

        sr = soundfile.info(path).samplerate if path != "-" else 44100
    except Exception:  # noqa: BLE001 - the reader reports real problems
        sr = 44100
    return lambda frames: frames / sr


def run_jobs(jobs: list[Job], processor: FileProcessor, *, quiet: bool, as_json: bool,
             summary: dict[str, Any]) -> int:
    """Process every job; failures are collected, not fatal. Returns the exit code."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    results: list[FileResult] = []
    t0 = time.perf_counter()
    live = console.is_terminal and not quiet
    progress = None
    if live:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TextColumn("{task.fields[speed]}"), TimeRemainingColumn(), console=console,
                            transient=False)
        progress.start()
        overall = progress.add_task("all files", total=len(jobs), speed="")
    try:
        for job in jobs:
            if job.error:
                results.append(FileResult(input=job.input, output=job.output, ok=False, error=job.error))
                if not quiet:
                    console.print(f"[red]failed[/red] {escape(job.error)}")
                continue
            task = None
            started = time.perf_counter()
            job_seconds = _duration_of(job.input)
            if progress is not None:
                task = progress.add_task(escape(job.input), total=1.0, speed="")

                def on_progress(done: int, total: int, _task=task, _t0=started) -> None:
                    elapsed = time.perf_counter() - _t0
                    speed = job_seconds(done) / elapsed if elapsed > 0 else 0.0
                    progress.update(_task, completed=done / max(total, 1), speed=f"{speed:.0f}× RT")

            else:
                on_progress = None
            try:
                res = processor.run(job.input, job.output, on_progress=on_progress)
            except FxnetError as e:
                res = FileResult(input=job.input, output=job.output, ok=False, error=str(e))
            results.append(res)
            if progress is not None:
                progress.update(task, completed=1.0, speed=f"{res.speed:.0f}× RT" if res.ok else "failed")
                progress.advance(overall)
            if not quiet:
                if res.ok:
                    note = (f" {res.over_full_scale} samples beyond full scale (peak {res.peak:.2f})"
                            if res.over_full_scale else "")
                    if "normalized_db" in res.extra:
                        note += f" scaled by {res.extra['normalized_db']:+.2f} dB to fit restored peaks"
                    if res.extra.get("note"):
                        console.print(f"{escape(res.input)}: {escape(res.extra['note'])}")
                    if not live:
                        console.print(f"{escape(res.input)} -> {escape(str(res.output))}: {res.seconds:.1f} s of audio in "
                                      f"{res.wall_seconds:.2f} s ({res.speed:.0f}× real time){';' + note if note else ''}")
                    elif note:
                        console.print(f"[yellow]warning[/yellow] {escape(str(res.output))}:{note}")
                else:
                    console.print(f"[red]failed[/red] {escape(res.error or '')}")
    finally:
        if progress is not None:
            progress.stop()
    failed = [r for r in results if not r.ok]
    wall = time.perf_counter() - t0
    audio = sum(r.seconds for r in results if r.ok)
    if not quiet and len(results) > 1:
        console.print(f"{len(results) - len(failed)} of {len(results)} files done, {audio:.1f} s of audio in "
                      f"{wall:.1f} s ({audio / wall if wall else 0:.0f}× real time)")
    if failed and not quiet:
        console.print(f"[red]{len(failed)} file(s) failed:[/red]")
        for r in failed:
            console.print(f"  {escape(r.error or '')}")
    if as_json:
        payload = dict(summary, files=[r.to_dict() for r in results], ok=len(results) - len(failed),
                       failed=len(failed), wall_seconds=round(wall, 3))
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        sys.stdout.flush()
    return 2 if failed else 0
