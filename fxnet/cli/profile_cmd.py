"""`fxnet profile`: train (capture) an effect model from dry/wet recordings or a reference effect."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from fxnet.train.loop import DEFAULT_ARCH, DEFAULT_LOSS, DEFAULT_SECONDS

HELP = """Train a knob-conditioned effect model (a capture) and write it as a model file.

Examples:

  fxnet profile dry/ wet/ -o amp.safetensors --seconds 1800

  fxnet profile dry/ wet/ -o comp.safetensors --knob-range threshold=-40:0:dB --steps 20000

  fxnet profile --synth comp4c -o comp4c.safetensors --arch tcn --steps 5000

  fxnet profile --synth hardclip --direction remove -o declip.safetensors --loss "sisdr+esr"

  fxnet profile dry/ wet/ --init la2a -o my_la2a.safetensors --lr 3e-4 --seconds 600

Wet files pair with dry files by name; knob values come from WET_DIR/knobs.csv
(file,<knob>,...) or names like take1__0.3__0.7.wav. Interrupted runs continue with --resume.
"""

_LOG_EVERY_SECONDS = 10.0


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Renderer:
    """Rich progress on a terminal, one-line logs otherwise, nothing with -q (all on stderr)."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self.progress = None
        self.task = None
        self.last_log = 0.0
        self.loss: float | None = None
        self.val: float | None = None

    def data(self, data) -> None:
        if self.quiet:
            return
        summary = data.summary()
        if summary["source"] == "synth":
            self.console.print(f"data: {summary['effect']} on synthetic clips (seed {summary['seed']}), "
                               f"validation {summary['validation']}")
            return
        sr = data.sample_rate
        for r in data.reports:
            self.console.print(f"{Path(r.wet).name} <- {Path(r.dry).name}: lag {r.lag_samples} samples "
                               f"({1000 * r.lag_samples / sr:.2f} ms), correlation {r.correlation:.3f}, "
                               f"{r.seconds:.1f} s")
        self.console.print(f"data: {summary['files']} pair(s), {summary['minutes']:.2f} min at {sr} Hz, "
                           f"split by {summary['split']}")

    def __call__(self, ev) -> None:
        if self.quiet:
            return
        if ev.loss is not None:
            self.loss = ev.loss
        if ev.val_esr is not None:
            self.val = ev.val_esr
        if ev.kind == "start":
            self.console.print(ev.message)
            if self.live:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                self.progress = Progress(TextColumn("training"), BarColumn(), TextColumn("{task.fields[info]}"),
                                         TimeRemainingColumn(), console=self.console)
                self.progress.start()
                self.task = self.progress.add_task("train", total=ev.total_steps, info="")
            return
        if ev.kind in ("end", "interrupted"):
            self.close()
            if ev.kind == "interrupted":
                self.console.print(ev.message)
            return
        if ev.message and not self.live:
            self.console.print(ev.message)
        loss = "-" if self.loss is None else f"{self.loss:.4g}"
        val = "-" if self.val is None else f"{self.val:.4g}"
        rate = "-" if ev.steps_per_second is None else f"{ev.steps_per_second:.2f}"
        info = (f"step {ev.step}{'/' + str(ev.total_steps) if ev.total_steps else ''}  loss {loss}  "
                f"val ESR {val}  {rate} steps/s  ETA {_fmt_time(ev.eta_seconds)}")
        if self.progress is not None:
            self.progress.update(self.task, completed=ev.step, total=ev.total_steps, info=info)
            return
        now = time.monotonic()
        if ev.kind == "validation" or now - self.last_log >= _LOG_EVERY_SECONDS:
            self.last_log = now
            self.console.print(info)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def result(self, res) -> None:
        if self.quiet or res is None:
            return
        from rich.table import Table

        from fxnet.train.loop import verdict

        v = res.validation
        self.console.print(
            f"wrote {res.path} ({res.steps} steps in {_fmt_time(res.wall_seconds)}, stopped by {res.stopped}); "
            f"validation ESR {v.esr:.4g} ({verdict(v.esr)}), best at step {res.best_step}; "
            f"training state in {res.state_path}")
        if 1 < len(v.per_setting) <= 32:
            table = Table(title="validation ESR per knob setting", show_edge=False)
            names = list(v.per_setting[0]["physical"])
            for name in names:
                table.add_column(name, justify="right")
            table.add_column("ESR", justify="right")
            for row in v.per_setting:
                table.add_row(*(f"{row['physical'][n]:g}" for n in names), f"{row['esr']:.4g}")
            self.console.print(table)


def _command_line(ctx: typer.Context) -> str:
    """The command as typed, rebuilt from the parsed parameters (defaults left out)."""
    words = ["fxnet", ctx.info_name or "profile"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value == param.default or value == [] or value == ():
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
        elif isinstance(value, bool):
            words.append(param.opts[-1] if value else "")
        else:
            for v in value if isinstance(value, (list, tuple)) else [value]:
                words += [max(param.opts, key=len), str(v)]
    return shlex.join(w for w in words if w)


def _families(text: str | None) -> tuple[str, ...] | None:
    """``"music"`` / ``"signaltrain"`` / ``"a,b"`` -> family names (checked by the generator)."""
    if not text:
        return None
    from fxnet.synth import MUSIC_FAMILIES, SIGNALTRAIN_FAMILIES

    named = {"music": MUSIC_FAMILIES, "signaltrain": SIGNALTRAIN_FAMILIES}
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        out.extend(named.get(item, (item,)) if item else ())
    return tuple(out)


def _peak_range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    from fxnet.errors import UsageError

    lo, sep, hi = text.partition(":")
    try:
        return float(lo), float(hi if sep else lo)
    except ValueError:
        raise UsageError(f"--synth-peak-dbfs expects LO:HI in dBFS (e.g. -12:0), got '{text}'") from None


def profile(
    ctx: typer.Context,
    dry_dir: Annotated[Optional[Path], typer.Argument(help="Folder of dry (input) recordings.", show_default=False)] = None,
    wet_dir: Annotated[Optional[Path], typer.Argument(help="Folder of wet (processed) recordings.", show_default=False)] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (.safetensors).",
                                         show_default=False)] = ...,
    synth: Annotated[Optional[str], typer.Option("--synth", help=(
        "Train on synthetic clips through this reference effect (see fxnet.effects) instead of folders."))] = None,
    direction: Annotated[str, typer.Option("--direction", help=(
        "apply: learn dry -> wet; remove: learn wet -> dry (a removal model)."))] = "apply",
    arch: Annotated[Optional[str], typer.Option("--arch", help=(
        f"Architecture (tcn, rnn, signaltrain, fir, gain...); default {DEFAULT_ARCH}, or --init's."))] = None,
    arch_config: Annotated[Optional[List[str]], typer.Option("--arch-config", help=(
        "KEY=VALUE hyper-parameter of the architecture, repeatable (e.g. channels=16)."))] = None,
    sample_rate: Annotated[Optional[int], typer.Option("--sample-rate", min=1, help=(
        "Model sample rate in Hz (default: the data's; 44100 for --synth)."))] = None,
    knob_range: Annotated[Optional[List[str]], typer.Option("--knob-range", help=(
        "NAME=LO:HI[:UNIT], repeatable: the knob's physical range; its values in the data are then physical."))] = None,
    max_lag_ms: Annotated[float, typer.Option("--max-lag-ms", min=0.0, help="Largest dry/wet latency searched, in ms.")] = 100.0,
    split: Annotated[str, typer.Option("--split", help="Validation split: auto, file or time (last 12 %).")] = "auto",
    allow_clipping: Annotated[bool, typer.Option("--allow-clipping", help="Accept wet files at full scale.")] = False,
    loss: Annotated[str, typer.Option("--loss", help=(
        "Loss terms WEIGHT*NAME joined by '+': esr, esr_rows, esr_pre, dc, logcosh, mrstft, sisdr, sdr, l1, mse."))] = DEFAULT_LOSS,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Training steps.")] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", min=0.0, help=(
        f"Training time in seconds (default {DEFAULT_SECONDS:g} when no budget is given)."))] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", min=0.0, help="Passes over the training audio.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per step (over all ranks).")] = 16,
    segment: Annotated[int, typer.Option("--segment", min=1, help="Output samples per example.")] = 8192,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate.")] = 3e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0, help="AdamW weight decay.")] = 1e-4,
    schedule: Annotated[str, typer.Option("--schedule", help="onecycle or plateau.")] = "onecycle",
    grad_clip: Annotated[float, typer.Option("--grad-clip", min=0.0, help="Max gradient norm.")] = 1.0,
    patience: Annotated[Optional[int], typer.Option("--patience", min=1, help=(
        "Stop after this many validations without a better validation ESR."))] = None,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1, help=(
        "Validate and write the model and its training state every N steps."))] = 250,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the model initialisation and the data.")] = 0,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: all cores, shared by ranks).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    no_polarity_flip: Annotated[bool, typer.Option("--no-polarity-flip", help=(
        "Do not invert random examples (use for effects that are not odd-symmetric)."))] = False,
    families: Annotated[Optional[str], typer.Option("--families", help=(
        "--synth material: comma-separated families (e.g. music = string,chord,bass,drums,speech); default all."))] = None,
    synth_peak_dbfs: Annotated[Optional[str], typer.Option("--synth-peak-dbfs", help=(
        "LO:HI: rescale each --synth clip to a peak level drawn in this range (dBFS), e.g. -12:0."))] = None,
    synth_pool: Annotated[int, typer.Option("--synth-pool", min=1, help="Clips kept in the --synth pool.")] = 256,
    synth_onsets: Annotated[float, typer.Option("--synth-onsets", min=0.0, max=1.0, help=(
        "Share of --synth examples silenced before a random point: file starts, for effects with long memory."))] = 0.0,
    val_clips: Annotated[int, typer.Option("--val-clips", min=1, help="Held-out --synth clips per knob setting.")] = 4,
    init: Annotated[Optional[str], typer.Option("--init", help=(
        "Start from this model's weights (a file, a name from `fxnet models`, or hf://...): fine-tune it. "
        "Its architecture is kept; --arch-config may change settings that keep the weights' shapes."))] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the training saved in OUTPUT.state.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing OUTPUT.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training summary as JSON on stdout.")] = False,
) -> None:
    from fxnet.train.data import parse_knob_range
    from fxnet.train.loop import TrainConfig
    from fxnet.train.profile import ProfileRequest, parse_arch_config
    from fxnet.train.profile import profile as run_profile

    if steps is None and seconds is None and epochs is None:
        seconds = DEFAULT_SECONDS
    cfg = TrainConfig(loss=loss, batch_size=batch_size, segment=segment, lr=lr, weight_decay=weight_decay,
                      schedule=schedule, grad_clip=grad_clip, steps=steps, seconds=seconds, epochs=epochs,
                      patience=patience, checkpoint_every=checkpoint_every, seed=seed, device=device,
                      polarity_flip=not no_polarity_flip)
    req = ProfileRequest(
        output=output, dry_dir=dry_dir, wet_dir=wet_dir, synth=synth, direction=direction, arch=arch,
        arch_config=parse_arch_config(arch_config or []), sample_rate=sample_rate,
        knob_ranges=[parse_knob_range(k) for k in knob_range or []], max_lag_ms=max_lag_ms, split=split,
        allow_clipping=allow_clipping, families=_families(families), peak_dbfs=_peak_range(synth_peak_dbfs), pool_clips=synth_pool, onset_share=synth_onsets, val_clips=val_clips, threads=threads, config=cfg,
        resume=resume, force=force, command=_command_line(ctx), init=init,
    )
    from fxnet.train.ddp import context_from_env

    renderer = _Renderer(quiet or not context_from_env().is_main)
    try:
        result = run_profile(req, on_event=renderer, on_data=renderer.data)
    finally:
        renderer.close()
    if result.validation is None:  # a rank other than 0 under torchrun
        return
    renderer.result(result)
    if as_json:
        payload = {"model": str(result.path), "state": str(result.state_path), "steps": result.steps,
                   "stopped": result.stopped, "best_step": result.best_step, "wall_seconds": result.wall_seconds,
                   "validation": result.validation.to_dict(), "training": result.training}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
