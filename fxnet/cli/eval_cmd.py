"""`fxnet eval`: score estimates against references (files or folders) with objective metrics,
or run a model over a test set of (input, target) pairs and score its outputs."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional

import typer

HELP = """Score estimates against references: SI-SDR, SDR, ESR, L1, MR-STFT, loudness, R_nonlin, PEAQ, FAD.

EST and REF are two files, or two folders whose audio files pair up by name. \
Prints a table per file and the median, quartiles and mean per metric (see docs/eval.md).

Scoring a model: --model NAME --testset DIR runs the model over DIR/input/*.wav|flac \
and scores each output against the file of the same name in DIR/target/ \
(DIR/input/song.wav with DIR/target/song.flac). A removal model runs as in 'fxnet remove' \
(--model auto: as fxnet remove chooses); an effect model as in \
'fxnet apply', with --knobs/--knob. Outputs are float32 WAV, never clipped. \
--baseline also scores the unprocessed input (method 'input'); --baseline input,aspade \
adds the A-SPADE declipper for removal models (slow: seconds per second of audio), and \
--baseline input,irm the ideal ratio mask: the oracle that knows the target's magnitude \
spectrum and keeps the input's phase (the upper bound of any spectral-mask remover).

Examples:

  fxnet eval restored.wav clean.wav

  fxnet eval out/demucs/ data/clean/ --metrics si_sdr,rnonlin,fad --csv scores.csv

  fxnet eval data/clean/ --method demucs=out/demucs --method aspade=out/aspade --plot box.png

  fxnet eval --model declip --testset data/test/ --baseline input,aspade --plot box.png

  fxnet eval --model la2a --testset data/la2a/ --knob peak_reduction=0.7 --keep out/
"""

#: Method names of the baselines: the unprocessed input, A-SPADE (removal models only) and the
#: ideal ratio mask oracle (it reads the target; see :func:`_irm_runner`).
#: ``--baseline`` is a flag whose optional list (``--baseline input,aspade``) arrives as the
#: positional argument: typer 0.29 has no option with an optional value, and in model mode
#: there is no other positional argument.
BASELINES = ("input", "aspade", "irm")

_NUMBER_FORMAT = ".5g"
#: Console width when stdout is not a terminal (wide enough for every metric's column).
_TABLE_WIDTH = 240


def eval_command(
    paths: Annotated[Optional[List[str]], typer.Argument(help=(
        "EST REF: estimate and reference files or folders. With --method, only REF; with --model, none."),
        show_default=False, metavar="EST REF")] = None,
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
    model: Annotated[Optional[str], typer.Option("--model", help=(
        "Score this model over --testset: a registry name, a .safetensors path, hf://org/repo/file, or auto "
        "(as 'fxnet remove' chooses per file)."), rich_help_panel="Scoring a model")] = None,
    testset: Annotated[Optional[str], typer.Option("--testset", help=(
        "With --model: a folder holding input/ (what the model gets: .wav, .flac...) and target/ (what it "
        "should give), paired by file name."), rich_help_panel="Scoring a model")] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help=(
        "With --model: also score baselines. --baseline alone: the unprocessed input ('input'); "
        "--baseline input,aspade,irm adds A-SPADE for removal models (slow) and the ideal-ratio-mask oracle."),
        metavar="[input,aspade,irm]",
        show_default=False, rich_help_panel="Scoring a model")] = False,
    knobs: Annotated[Optional[str], typer.Option("--knobs", "-k", help=(
        "With an effect model: comma-separated knob values normalised to 0-1, in the model's order."),
        rich_help_panel="Scoring a model")] = None,
    knob: Annotated[Optional[List[str]], typer.Option("--knob", help=(
        "With an effect model: NAME=VALUE, repeatable; VALUE normalised or with the knob's unit."),
        rich_help_panel="Scoring a model")] = None,
    keep: Annotated[Optional[str], typer.Option("--keep", help=(
        "With --model: keep the outputs as DIR/<method>/<name>.wav (replacing files of those names) instead "
        "of in a temporary folder."), metavar="DIR", rich_help_panel="Scoring a model")] = None,
    device: Annotated[str, typer.Option("--device", help="With --model: auto, cpu, cuda[:N] or mps.",
                                        rich_help_panel="Scoring a model")] = "auto",
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
    if model is not None or testset is not None:
        if model is None or testset is None:
            raise UsageError("--model and --testset go together: fxnet eval --model NAME --testset DIR")
        extra = list(paths or [])
        baselines = None
        if baseline:
            baselines = extra.pop(0) if extra else "input"  # `--baseline input,aspade`: see BASELINES
            _baselines(baselines)
        if extra or method:
            raise UsageError("--model scores a model over --testset DIR: give no EST REF paths and no --method")
        methods: list[tuple[str, str]] = []
        reference = str(Path(testset) / "target")
        inputs = [str(Path(testset) / "input"), reference]
    else:
        given = [n for n, v in (("--baseline", baseline), ("--knobs", knobs), ("--knob", knob), ("--keep", keep)) if v]
        if given:
            raise UsageError(f"{given[0]} goes with --model NAME --testset DIR")
        methods = _methods(paths or [], method or [])
        reference = (paths or [])[-1]
        inputs = [reference] + [d for _, d in methods]
    for target in (csv_path, plot):
        _check_report_path(target, inputs)

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

    live = err.is_terminal and not quiet and not as_json
    stack = contextlib.ExitStack()  # the temporary folder of a model's outputs, kept until scored
    with stack:
        context = None
        if model is not None:
            sources, context = _run_testset(model, testset, suffix=suffix, baseline=baselines, knobs=knobs,
                                            knob=knob or [], keep=keep, device=device, err=err, quiet=quiet,
                                            live=live, stack=stack)
        else:
            sources = []
            for label, est in methods:
                pairing = pair_files(est, reference, suffix=suffix)
                sources.append(_Source(label, est, pairing))
                if not quiet:
                    for path in pairing.est_only:
                        err.print(f"[yellow]unpaired[/yellow] {_esc(path)}: no reference of that name in "
                                  f"{_esc(reference)}")
                    for path in pairing.ref_only:
                        err.print(f"[yellow]unpaired[/yellow] {_esc(path)}: no estimate of that name in {_esc(est)}")
                for text in pairing.errors:
                    err.print(f"[red]failed[/red] {_esc(text)}")

        total = sum(len(s.pairing.pairs) for s in sources)
        progress = _progress(err, total) if live else None
        timings: dict[str, float] = {}
        report: list[dict[str, Any]] = []
        try:
            for source in sources:
                def on_result(result) -> None:
                    if progress is not None:
                        progress.advance(progress.task_ids[0])
                    if not quiet:
                        for w in result.warnings:
                            err.print(f"[yellow]warning[/yellow] {_esc(result.pair.est)}: {_esc(w)}")
                    for e in ([result.error] if result.error else []) + result.errors:
                        err.print(f"[red]failed[/red] {_esc(e)}")

                label = source.name
                set_errors: list[str] = []
                results, set_values = evaluate(source.pairing.pairs, names, rate=rate, fad_embedding=embedding,
                                               timings=timings, on_result=on_result, set_errors=set_errors)
                if source.failed:  # files the method could not process, in the test set's order
                    by_name = {r.pair.name: r for r in results} | source.failed
                    results = [by_name[n] for n in source.order if n in by_name]
                for e in set_errors:
                    err.print(f"[red]failed[/red] {_esc(label)}: {_esc(e)}")
                report.append({"name": label, "estimates": source.estimates, "pairing": source.pairing,
                               "results": results, "set": set_values, "processing": source.processing,
                               "set_errors": [f"{label}: {e}" for e in set_errors]})
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
                boxplot(data, plot, metrics=pair_names,
                        title=None if context is None else f"{context['name']} on {context['dir']}")
            elif not quiet:
                err.print("[yellow]warning[/yellow] --plot: no per-file metric to draw (fad is one number per folder)")
        wall = time.perf_counter() - started
        if as_json:
            doc = _json_report(report, names, reference, fad_embedding, failures, wall, timings)
            if context is not None:
                doc["testset"] = context
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            sys.stdout.flush()
        else:
            _render(out, report, names, pair_names, quiet=quiet, fad_embedding=fad_embedding,
                    by_file=context is not None)
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


# --- scoring a model over a test set ------------------------------------------------------


@dataclass
class _Source:
    """One method's estimates: pairs to score, plus the files it failed to make (model mode)."""

    name: str
    estimates: str
    pairing: Any  #: fxnet.metrics.evaluate.Pairing
    failed: dict[str, Any] = field(default_factory=dict)  #: pair name -> PairResult with ``error``
    order: list[str] = field(default_factory=list)  #: pair names in the test set's order
    processing: dict[str, Any] | None = None


def _baselines(spec: str | None) -> list[str]:
    """``--baseline`` (bare: input) or ``--baseline input,aspade`` -> method names, in order."""
    from fxnet.errors import UsageError

    if spec is None:
        return []
    wanted = [b.strip() for b in spec.split(",") if b.strip()]
    if not wanted or any(b not in BASELINES for b in wanted):
        raise UsageError(f"--baseline '{spec}': expected nothing or a comma-separated list of "
                         f"{', '.join(BASELINES)}")
    return list(dict.fromkeys(wanted))


def _output_options(device: str):
    """Processing options of model mode: float32 WAV outputs, overwritten; ``clip`` leaves float
    samples beyond full scale as they are (it clips only integer formats)."""
    from fxnet.process import ProcessOptions

    return ProcessOptions(device=device, format="wav", bits="32f", force=True, clip_mode="clip")


def _load_runner(spec: str, device: str, knobs: str | None, knob: list[str]):
    """Load the model under test; returns (run(in, out) -> FileResult, display name, task, knob values).

    A removal model (or ``auto``) runs through :class:`fxnet.restore.pipeline.Remover`, as
    ``fxnet remove``; an effect model through the FileProcessor ``fxnet apply`` uses.
    Outputs as :func:`_output_options` says.
    """
    from fxnet.checkpoint import read_header
    from fxnet.cli.common import load_for_processing
    from fxnet.errors import ModelNotFoundError, UsageError
    from fxnet.knobs import resolve_knobs
    from fxnet.registry import resolve_model
    from fxnet.restore.pipeline import AUTO, Remover

    try:
        path = None if spec == AUTO else resolve_model(spec)
        info = None if path is None else read_header(path)
        if info is None or info.task == "remove":
            if knobs or knob:
                raise UsageError(f"--knobs/--knob: '{spec}' is a removal model; removal models have no knobs")
            remover = Remover(_output_options(device), method="model", model=AUTO if path is None else str(path))
            remover.load()
            name = AUTO if info is None else (info.meta.get("name") or Path(path).stem)
            return remover.run, name, "remove", None
        processor, info, name = load_for_processing(
            str(path), device=device, batch_size=None, chunk_seconds=None, overlap=None, rate=None,
            bits="32f", fmt="wav", force=True, clip_mode="clip")
    except ModelNotFoundError as e:  # a name on the command line that means nothing: a usage error
        raise UsageError(str(e)) from None
    values = resolve_knobs(info.knobs, knobs, knob)
    processor.knobs = values.values
    return processor.run, name, info.task, values


def _safe_name(name: str) -> str:
    """A method name as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _run_testset(spec: str, testset: str, *, suffix: str, baseline: str | None, knobs: str | None,
                 knob: list[str], keep: str | None, device: str, err, quiet: bool, live: bool,
                 stack: contextlib.ExitStack) -> tuple[list[_Source], dict[str, Any]]:
    """Pair the test set, run the model (and A-SPADE if asked) over its inputs; returns the
    methods to score (model, then the baselines) and the run's description for the JSON."""
    from fxnet.errors import UsageError
    from fxnet.metrics.evaluate import Pairing, testset_pairs
    from fxnet.process import default_device
    from fxnet.restore.pipeline import Remover

    wanted = _baselines(baseline)
    root = Path(testset)
    pairing = testset_pairs(root, suffix=suffix)
    dev = default_device(device)
    run_model, name, task, values = _load_runner(spec, dev, knobs, knob)
    if "aspade" in wanted and task != "remove":
        raise UsageError(f"--baseline aspade: A-SPADE is a declipper, a baseline for removal models; "
                         f"'{spec}' is an effect model")
    label = f"model:{name}" if name in BASELINES else name
    runs: list[tuple[str, Callable]] = [(label, run_model)]
    if "aspade" in wanted:
        runs.append(("aspade", Remover(_output_options(dev), method="aspade").run))
    if "irm" in wanted:
        runs.append(("irm", _irm_runner({p.est: p.ref for p in pairing.pairs})))
    if keep is not None:
        out_root = Path(keep)
        if out_root.exists() and not out_root.is_dir():
            raise UsageError("--keep: not a directory", path=out_root)
        own = {os.path.realpath(root / "input"), os.path.realpath(root / "target")}
        for method, _ in runs:
            if os.path.realpath(out_root / _safe_name(method)) in own:
                raise UsageError(f"--keep: the {method} outputs would replace the test set's own files; "
                                 "choose another folder", path=out_root / _safe_name(method))
    else:
        out_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fxnet-eval-")))
    if not quiet:
        for path in pairing.est_only:
            err.print(f"[yellow]unpaired[/yellow] {_esc(path)}: no target of that name in {_esc(str(root / 'target'))}")
        for path in pairing.ref_only:
            err.print(f"[yellow]unpaired[/yellow] {_esc(path)}: no input of that name in {_esc(str(root / 'input'))}")
    for text in pairing.errors:
        err.print(f"[red]failed[/red] {_esc(text)}")

    order = [p.name for p in pairing.pairs]
    made: dict[str, _Source] = {}
    for method, run in runs:
        made[method] = _process(method, run, pairing, out_root / _safe_name(method), err=err, live=live)
        made[method].order = order
    sources = [made[label]]
    for b in wanted:
        sources.append(made[b] if b in made else
                       _Source("input", str(root / "input"), Pairing(list(pairing.pairs), pairing.est_only,
                                                                    pairing.ref_only), order=order))
    sources[0].pairing.errors = list(pairing.errors)  # ambiguous names: reported once
    context = {"dir": str(root), "model": spec, "name": label, "task": task,
               "knobs": None if values is None else values.physical(),
               "knobs_normalised": None if values is None else values.as_dict(),
               "baselines": wanted, "outputs": None if keep is None else str(out_root)}
    return sources, context


def _irm_runner(targets: dict[str, str]) -> Callable:
    """The ideal-ratio-mask oracle as a method: run(input, output) reads the input and its
    target (``targets[input]``) as scoring does (:func:`fxnet.metrics.evaluate.load_pair`: at
    the target's rate, channels and lengths reconciled), writes ``iSTFT(|T| / |X| * X)``
    (1024-point frames, hop 256) as float32 WAV, atomically, and returns its FileResult."""
    import numpy as np
    import torch

    from fxnet.audio import AtomicAudioWriter
    from fxnet.metrics.evaluate import Pair, load_pair
    from fxnet.models.openunmix import ideal_ratio_mask
    from fxnet.process import FileResult

    def run(src: str, dst: str):
        t0 = time.perf_counter()
        x, t, rate, _ = load_pair(Pair(Path(src).stem, src, targets[src]))
        y = ideal_ratio_mask(t, x).astype(np.float32)
        with AtomicAudioWriter(dst, sample_rate=rate, channels=y.shape[0], fmt="WAV", subtype="FLOAT",
                               force=True) as writer:
            writer.write(torch.from_numpy(y))
            writer.commit()
        return FileResult(src, dst, seconds=y.shape[-1] / rate, wall_seconds=time.perf_counter() - t0,
                          sample_rate=rate, channels=y.shape[0], peak=float(np.abs(y).max(initial=0.0)))

    return run


def _process(method: str, run: Callable, pairing, folder: Path, *, err, live: bool) -> _Source:
    """Run one method over every input of the test set into ``folder``; a file that fails is
    reported and kept as a failed result, the others become pairs (output, target)."""
    from fxnet.errors import FxnetError, OutputError
    from fxnet.metrics.evaluate import Pair, Pairing, PairResult

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot make the output folder ({e.strerror or e})", path=folder) from None
    source = _Source(method, str(folder), Pairing([], list(pairing.est_only), list(pairing.ref_only)))
    models: dict[str, int] = {}
    audio = wall = 0.0
    progress = _progress(err, len(pairing.pairs), f"{method}: processing") if live else None
    try:
        for pair in pairing.pairs:
            output = Pair(pair.name, str(folder / f"{pair.name}.wav"), pair.ref)
            try:
                result = run(pair.est, output.est)
            except FxnetError as e:
                text = f"{method}: {e}"
                source.failed[pair.name] = PairResult(output, error=text)
                err.print(f"[red]failed[/red] {_esc(text)}")
            else:
                source.pairing.pairs.append(output)
                audio += result.seconds
                wall += result.wall_seconds
                used = result.extra.get("model")
                if used:
                    models[used] = models.get(used, 0) + 1
            if progress is not None:
                progress.advance(progress.task_ids[0])
    finally:
        if progress is not None:
            progress.stop()
    source.processing = {"files": len(source.pairing.pairs), "failed": len(source.failed),
                         "audio_seconds": round(audio, 3), "wall_seconds": round(wall, 3),
                         "speed_x_realtime": round(audio / wall, 2) if wall > 0 else None,
                         "models": models or None}
    return source


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


def _progress(console, total: int, label: str = "scoring"):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn(_esc(label)), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    progress.add_task("pairs", total=total)
    progress.start()
    return progress


def _render(out, report: list[dict[str, Any]], names: list[str], pair_names: list[str], *, quiet: bool,
            fad_embedding: str, by_file: bool = False) -> None:
    """Tables per file and per metric. ``by_file`` (model mode) puts the methods' rows for one
    file, and for one metric in the summary, next to each other."""
    from rich.table import Table

    from fxnet.metrics.evaluate import summarize

    many = len(report) > 1
    by_file = by_file and many
    if not quiet and pair_names:
        table = Table(title="Scores per file", title_justify="left")
        if many:
            table.add_column("method")
        table.add_column("file")
        for n in pair_names:
            table.add_column(_header(n), justify="right")
        rows = [(m["name"], r) for m in report for r in m["results"]]
        if by_file:
            files = list(dict.fromkeys(r.pair.name for _, r in rows))
            rows.sort(key=lambda row: files.index(row[1].pair.name))  # stable: methods keep their order
        for i, (method, r) in enumerate(rows):
            if by_file and i and r.pair.name != rows[i - 1][1].pair.name:
                table.add_section()
            cells = ["failed: see above"] + [""] * (len(pair_names) - 1) if r.error else \
                [_fmt(r.scores.get(n)) for n in pair_names]
            table.add_row(*([_esc(method)] if many else []), _esc(r.pair.name), *cells)
        out.print(table)
    if pair_names:
        table = Table(title="Summary", title_justify="left")
        if many:
            table.add_column("method")
        for col in ("metric", "median", "Q1", "Q3", "mean", "n"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        cells = [(m, n) for n in pair_names for m in report] if by_file else \
            [(m, n) for m in report for n in pair_names]
        for i, (m, n) in enumerate(cells):
            if by_file and i and n != cells[i - 1][1]:
                table.add_section()
            s = summarize([r.scores.get(n, math.nan) for r in m["results"] if r.error is None])
            table.add_row(*([_esc(m["name"])] if many else []), _header(n), _fmt(s["median"]), _fmt(s["q1"]),
                          _fmt(s["q3"]), _fmt(s["mean"]), str(s["n"]))
        out.print(table)
    for m in report:
        for name, value in m["set"].items():
            files = sum(1 for r in m["results"] if r.error is None)
            prefix = f"{m['name']}: " if many else ""
            out.print(f"{prefix}{_header(name)} = {_fmt(value)} over {files} file pair(s) "
                      f"(embedding: {_esc(fad_embedding)})")
    for m in report:
        info = m.get("processing")
        if info:
            speed = f" ({info['speed_x_realtime']:.3g}× real time)" if info["speed_x_realtime"] else ""
            used = f"; models used: {', '.join(f'{k} ×{v}' for k, v in info['models'].items())}" \
                if info["models"] and set(info["models"]) != {m["name"]} else ""
            failed = f", {info['failed']} failed" if info["failed"] else ""
            out.print(f"{_esc(m['name'])}: processed {info['files']} file(s){failed}, {info['audio_seconds']:g} s "
                      f"of audio in {info['wall_seconds']:g} s{speed}{_esc(used)}")


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
            "processing": m.get("processing"),
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
