"""`fxnet eval`: score estimates against references (files or folders) with objective metrics."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

HELP = """Score estimates against references: SI-SDR, SDR, ESR, L1, MR-STFT, loudness, R_nonlin, PEAQ, FAD.

EST and REF are two files, or two folders whose audio files pair up by name. Prints a
table per file and the median, quartiles and mean per metric (see docs/eval.md).

Examples:

  fxnet eval restored.wav clean.wav

  fxnet eval out/demucs/ data/clean/ --metrics si_sdr,rnonlin,fad --csv scores.csv

  fxnet eval data/clean/ --method demucs=out/demucs --method aspade=out/aspade --plot box.png
"""

_NUMBER_FORMAT = ".5g"
#: Console width when stdout is not a terminal (wide enough for every metric's column).
_TABLE_WIDTH = 240


def eval_command(
    paths: Annotated[List[str], typer.Argument(help=(
        "EST REF: estimate and reference files or folders. With --method, only REF."), show_default=False,
        metavar="EST REF")],
    method: Annotated[Optional[List[str]], typer.Option("--method", "-M", help=(
        "NAME=DIR: a folder of estimates to score under NAME; repeatable, drawn side by side."))] = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", "-m", help=(
        "Comma-separated metrics (default: all per-file metrics: si_sdr,sdr,esr,l1,mrstft,lufs_diff,rnonlin,"
        "peaq). Add 'fad' for the Fréchet audio distance over each whole folder."))] = None,
    suffix: Annotated[str, typer.Option("--suffix", help=(
        "Removed from estimate names before pairing, e.g. '.fx' pairs song.fx.wav with song.wav."))] = "",
    rate: Annotated[Optional[int], typer.Option("--rate", "-r", min=1, help=(
        "Score at this sample rate (default: each reference's rate; estimates are resampled to it)."))] = None,
    fad_embedding: Annotated[str, typer.Option("--fad-embedding", help=(
        "Embedding for fad: 'logmel' (offline, default) or a VGGish-style model: a .safetensors path, "
        "hf://org/repo/file.safetensors (optionally @revision), or a registry name."))] = "logmel",
    csv_path: Annotated[Optional[str], typer.Option("--csv", help="Also write the per-file scores to this CSV file.")] = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also draw box plots per metric and method to this PNG file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary: no per-file table, no progress.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")] = False,
) -> None:
    from rich.console import Console

    from fxnet.errors import UsageError
    from fxnet.metrics import DEFAULT_METRICS, MetricUnavailableError, get_metric, parse_metric_names
    from fxnet.metrics.evaluate import evaluate, pair_files

    started = time.perf_counter()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal:  # a file or a pipe: never squeeze or cut the numbers
        out = Console(highlight=False, soft_wrap=False, width=_TABLE_WIDTH)
    methods = _methods(paths, method or [])
    reference = paths[-1]
    for target in (csv_path, plot):
        _check_report_path(target, [reference] + [d for _, d in methods])

    names = parse_metric_names(metrics)
    for name in list(names):
        m = get_metric(name)
        if m.kind != "pair":
            continue
        try:
            m.load()
        except MetricUnavailableError as e:
            if metrics is not None:
                raise
            names.remove(name)  # a default metric that is not installed: say so, go on
            if not quiet:
                err.print(f"[yellow]warning[/yellow] {_esc(str(e))}; left out")
    if not names:
        raise UsageError("no metric left to compute")
    embedding = None
    if "fad" in names:
        from fxnet.metrics.fad import get_embedding

        embedding = get_embedding(fad_embedding)

    pairings = []
    for label, est in methods:
        pairing = pair_files(est, reference, suffix=suffix)
        pairings.append((label, est, pairing))
        if not quiet:
            for path in pairing.est_only:
                err.print(f"[yellow]unpaired[/yellow] {_esc(path)}: no reference of that name in {_esc(reference)}")
            for path in pairing.ref_only:
                err.print(f"[yellow]unpaired[/yellow] {_esc(path)}: no estimate of that name in {_esc(est)}")
        for text in pairing.errors:
            err.print(f"[red]failed[/red] {_esc(text)}")

    total = sum(len(p.pairs) for _, _, p in pairings)
    progress = _progress(err, total) if (err.is_terminal and not quiet and not as_json) else None
    timings: dict[str, float] = {}
    report: list[dict[str, Any]] = []
    try:
        for label, est, pairing in pairings:
            def on_result(result, _label=label) -> None:
                if progress is not None:
                    progress.advance(progress.task_ids[0])
                if not quiet:
                    for w in result.warnings:
                        err.print(f"[yellow]warning[/yellow] {_esc(result.pair.est)}: {_esc(w)}")
                for e in ([result.error] if result.error else []) + result.errors:
                    err.print(f"[red]failed[/red] {_esc(e)}")

            set_errors: list[str] = []
            results, set_values = evaluate(pairing.pairs, names, rate=rate, fad_embedding=embedding,
                                           timings=timings, on_result=on_result, set_errors=set_errors)
            for e in set_errors:
                err.print(f"[red]failed[/red] {_esc(label)}: {_esc(e)}")
            report.append({"name": label, "estimates": est, "pairing": pairing, "results": results,
                           "set": set_values, "set_errors": [f"{label}: {e}" for e in set_errors]})
    finally:
        if progress is not None:
            progress.stop()

    pair_names = [n for n in names if get_metric(n).kind == "pair"]
    failures = [e for m in report for r in m["results"] for e in ([r.error] if r.error else []) + r.errors]
    failures += [e for m in report for e in m["pairing"].errors + m["set_errors"]]
    if csv_path:
        _write_csv(csv_path, report, pair_names)
    if plot:
        from fxnet.metrics.plots import boxplot

        data = {m["name"]: {n: [r.scores.get(n, math.nan) for r in m["results"] if r.error is None]
                            for n in pair_names} for m in report}
        if pair_names:
            boxplot(data, plot, metrics=pair_names)
        elif not quiet:
            err.print("[yellow]warning[/yellow] --plot: no per-file metric to draw (fad is one number per folder)")
    wall = time.perf_counter() - started
    if as_json:
        sys.stdout.write(json.dumps(_json_report(report, names, reference, fad_embedding, failures, wall, timings),
                                    indent=2) + "\n")
        sys.stdout.flush()
    else:
        _render(out, report, names, pair_names, quiet=quiet, fad_embedding=fad_embedding)
        if failures and not quiet:
            err.print(f"[red]{len(failures)} problem(s):[/red]")
            for e in failures:
                err.print(f"  {_esc(e)}")
    raise typer.Exit(2 if failures else 0)


# --- arguments -------------------------------------------------------------------------------


def _methods(paths: list[str], method_specs: list[str]) -> list[tuple[str, str]]:
    from fxnet.errors import UsageError

    if len(paths) > 2 or not paths:
        raise UsageError(f"expected EST REF (or REF with --method), got {len(paths)} path(s)")
    methods: list[tuple[str, str]] = []
    if len(paths) == 2:
        est = Path(paths[0])
        methods.append((est.stem if est.is_file() else (est.resolve().name or str(est)), paths[0]))
    elif not method_specs:
        raise UsageError("only one path given: use EST REF, or REF with --method NAME=DIR")
    for spec in method_specs:
        name, sep, directory = spec.partition("=")
        if not sep or not name.strip() or not directory.strip():
            raise UsageError(f"--method '{spec}': expected NAME=DIR")
        methods.append((name.strip(), directory.strip()))
    seen: set[str] = set()
    for name, _ in methods:
        if name in seen:
            raise UsageError(f"method name '{name}' is used twice; name each --method differently")
        seen.add(name)
    return methods


def _check_report_path(path: str | None, inputs: list[str]) -> None:
    """Reports may overwrite reports, never an input or an audio file."""
    from fxnet.batch import AUDIO_EXTENSIONS
    from fxnet.errors import UsageError

    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError("is a directory, not a report file name", path=p)
    if p.suffix.lower() in AUDIO_EXTENSIONS or any(os.path.realpath(p) == os.path.realpath(i) for i in inputs):
        raise UsageError("refusing to write a report over an audio file or an input", path=p)
    if not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise UsageError("directory does not exist", path=p.parent)


# --- rendering -----------------------------------------------------------------------------------


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, _NUMBER_FORMAT)


def _header(name: str) -> str:
    from fxnet.metrics import get_metric

    m = get_metric(name)
    return _esc(f"{name}{f' [{m.unit}]' if m.unit else ''} {'↑' if m.higher_is_better else '↓'}")


def _progress(console, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    progress.add_task("pairs", total=total)
    progress.start()
    return progress


def _render(out, report: list[dict[str, Any]], names: list[str], pair_names: list[str], *, quiet: bool,
            fad_embedding: str) -> None:
    from rich.table import Table

    from fxnet.metrics.evaluate import summarize

    many = len(report) > 1
    if not quiet and pair_names:
        table = Table(title="Scores per file", title_justify="left")
        if many:
            table.add_column("method")
        table.add_column("file")
        for n in pair_names:
            table.add_column(_header(n), justify="right")
        for m in report:
            for r in m["results"]:
                cells = ["failed: see above"] + [""] * (len(pair_names) - 1) if r.error else \
                    [_fmt(r.scores.get(n)) for n in pair_names]
                table.add_row(*([m["name"]] if many else []), _esc(r.pair.name), *cells)
        out.print(table)
    if pair_names:
        table = Table(title="Summary", title_justify="left")
        if many:
            table.add_column("method")
        for col in ("metric", "median", "Q1", "Q3", "mean", "n"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for m in report:
            for n in pair_names:
                s = summarize([r.scores.get(n, math.nan) for r in m["results"] if r.error is None])
                table.add_row(*([m["name"]] if many else []), _header(n), _fmt(s["median"]), _fmt(s["q1"]),
                              _fmt(s["q3"]), _fmt(s["mean"]), str(s["n"]))
        out.print(table)
    for m in report:
        for name, value in m["set"].items():
            files = sum(1 for r in m["results"] if r.error is None)
            prefix = f"{m['name']}: " if many else ""
            out.print(f"{prefix}{_header(name)} = {_fmt(value)} over {files} file pair(s) "
                      f"(embedding: {_esc(fad_embedding)})")


def _json_report(report, names, reference, fad_embedding, failures, wall, timings) -> dict[str, Any]:
    from fxnet.metrics import describe, get_metric
    from fxnet.metrics.evaluate import _json_number, summarize

    pair_names = [n for n in names if get_metric(n).kind == "pair"]
    methods = []
    for m in report:
        ok = [r for r in m["results"] if r.error is None]
        methods.append({
            "name": m["name"],
            "estimates": m["estimates"],
            "files": [r.to_dict() for r in m["results"]],
            "summary": {n: {k: (_json_number(v) if k != "n" else v) for k, v in
                            summarize([r.scores.get(n, math.nan) for r in ok]).items()} for n in pair_names},
            "set_metrics": {k: _json_number(v) for k, v in m["set"].items()},
            "unpaired": {"estimates": m["pairing"].est_only, "references": m["pairing"].ref_only},
        })
    return {
        "command": "eval",
        "reference": reference,
        "metrics": describe(names),
        "fad_embedding": fad_embedding if "fad" in names else None,
        "methods": methods,
        "pairs": sum(len(m["results"]) for m in report),
        "failed": len(failures),
        "errors": failures,
        "wall_seconds": round(wall, 3),
        "timings_seconds": {k: round(v, 4) for k, v in timings.items()},
    }


def _write_csv(path: str, report: list[dict[str, Any]], pair_names: list[str]) -> None:
    """One row per pair (method, name, files, scores, notes), written atomically."""
    from fxnet.errors import OutputError

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "name", "est", "ref", *pair_names, "warnings", "errors"])
    for m in report:
        for r in m["results"]:
            scores = [repr(float(r.scores[n])) if n in r.scores else "" for n in pair_names]
            writer.writerow([m["name"], r.pair.name, r.pair.est, r.pair.ref, *scores, " | ".join(r.warnings),
                             " | ".join(r.errors + ([r.error] if r.error else []))])
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".fxnet-partial",
                                   dir=target.parent if str(target.parent) else ".")
    except OSError as e:
        raise OutputError(f"cannot write the CSV file ({e.strerror or e})", path=target) from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write the CSV file ({e.strerror or e})", path=target) from None
