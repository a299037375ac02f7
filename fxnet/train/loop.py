"""The training loop: AdamW, 1cycle or plateau schedule, budgets, validation, checkpoints, resume.

One step: sample a batch (the data source's own crops, random polarity flip), forward,
loss, backward, gradient-norm clipping, AdamW, schedule. AMP (float16 autocast with a
gradient scaler) is used only on CUDA. Budgets: ``steps``, ``epochs`` (an epoch is the
training audio's length in target samples, or the synth pool's, over ``batch_size *
segment``) and ``seconds``; the first one reached ends the run.

The 1cycle schedule (Smith & Topin 2019; SignalTrain's: 30 % warm-up, cosine phases)
runs over the step budget when there is one. With a time budget only, it runs on the
clock: the learning rate at each step is the 1cycle curve at ``elapsed / seconds`` (rank
0's clock, broadcast to every rank), so warm-up and annealing fit the budget however
fast or slow the machine turns out to be — a step total fixed from an early speed
estimate ends mid-schedule, before the annealing, when the machine gets busier.

Every ``checkpoint_every`` steps (and at the end) the model is validated (ESR per knob
setting; the overall value is their mean), and two files are written atomically:

* the model file (``fxnet.checkpoint.save_model``): the weights with the best validation
  ESR so far, usable by ``fxnet apply`` at any time, with the training summary;
* ``<model file>.state``: the latest weights, the optimiser's moments, the schedule, the
  step, the RNG states (torch; numpy's of every rank) and the early-stopping record -
  tensors in safetensors, everything else as JSON in its header. Never pickle.

Each validation also appends ``{"seconds", "step", "val_esr", "train_loss"}`` (training
seconds so far, the mean training loss since the previous validation) to a history that
the training summary keeps (``training["history"]``): the ESR-vs-time curve of the run.

``resume=True`` reloads the state and continues exactly: N steps + resume N steps gives
the same weights as 2N steps. A NaN/Inf loss or gradient stops the run with a
TrainingError; the files of the last good checkpoint are left untouched.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import numpy as np
import torch
from torch import nn

from fxnet.errors import TrainingError, UsageError
from fxnet.train.data import CropLayout, ValidationSet
from fxnet.train.ddp import (DistContext, all_gather_object, all_reduce_sum, broadcast_float,
                             max_replica_difference, wrap)

#: The architecture ``fxnet profile`` trains unless told otherwise.
DEFAULT_ARCH = "tcn"
#: The default loss when applying / removing an effect.
DEFAULT_LOSS = "esr+0.5*mrstft"
#: Training time when no budget is given on the command line, in seconds.
DEFAULT_SECONDS = 600.0
#: Steps run at the starting rate to measure the speed when only a time budget is given.
PROBE_STEPS = 10
#: Metadata key of the training-state file.
STATE_KEY = "fxnet_state"
STATE_FORMAT_VERSION = 1
#: Configuration fields that must match for --resume to continue the same run.
RESUME_FIELDS = ("loss", "batch_size", "segment", "lr", "weight_decay", "schedule", "pct_start", "grad_clip",
                 "seed", "polarity_flip")
#: Validation-ESR verdicts (Neural Amp Modeler's thresholds).
VERDICTS = ((0.01, "great"), (0.035, "not bad"), (0.1, "might sound ok"), (math.inf, "poor"))

Schedule = Literal["onecycle", "plateau"]


def one_cycle_factor(progress: float, pct_start: float, div: float = 25.0, final_div: float = 1e4) -> float:
    """The 1cycle curve (as torch's OneCycleLR, cosine) at ``progress`` in [0, 1], as a
    fraction of the peak learning rate: lr/div -> lr over ``pct_start``, then -> lr/(div*final_div)."""
    p = min(max(progress, 0.0), 1.0)
    start, end = 1.0 / div, 1.0 / (div * final_div)
    if p < pct_start:
        a = p / pct_start
        return start + (1.0 - start) * (1.0 - math.cos(math.pi * a)) / 2.0
    a = (p - pct_start) / max(1e-12, 1.0 - pct_start)
    return end + (1.0 - end) * (1.0 + math.cos(math.pi * a)) / 2.0


@dataclass
class TrainConfig:
    """Optimisation settings; budgets ``steps`` / ``seconds`` / ``epochs`` (at least one)."""

    loss: str = DEFAULT_LOSS
    batch_size: int = 16  #: examples per step over all ranks
    segment: int = 8192  #: output samples per example (rounded to the model's multiple)
    lr: float = 3e-3  #: peak learning rate
    weight_decay: float = 1e-4
    schedule: Schedule = "onecycle"
    pct_start: float = 0.3  #: 1cycle warm-up share
    grad_clip: float = 1.0  #: max gradient norm
    steps: int | None = None
    seconds: float | None = None
    epochs: float | None = None
    patience: int | None = None  #: validations without improvement before stopping
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"
    polarity_flip: bool = True
    amp: bool = True  #: float16 autocast, CUDA only

    def check(self) -> None:
        if self.steps is None and self.seconds is None and self.epochs is None:
            raise UsageError("give a training budget: --steps, --seconds or --epochs")
        for name in ("steps", "seconds", "epochs", "batch_size", "segment", "checkpoint_every", "lr"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {v}")
        if self.schedule not in ("onecycle", "plateau"):
            raise UsageError(f"--schedule must be 'onecycle' or 'plateau', got '{self.schedule}'")
        from fxnet.train.losses import parse_loss

        parse_loss(self.loss)


class DataSource(Protocol):
    layout: CropLayout
    knob_specs: tuple
    samples_per_epoch: int
    validation: ValidationSet

    def sample(self, batch: int, rng: np.random.Generator, step: int) -> tuple[torch.Tensor, ...]: ...

    def summary(self) -> dict[str, Any]: ...


@dataclass
class TrainEvent:
    """Progress report sent to ``on_event`` (rank 0 only)."""

    kind: Literal["start", "step", "validation", "checkpoint", "end", "interrupted"]
    step: int
    total_steps: int | None
    loss: float | None = None
    lr: float | None = None
    val_esr: float | None = None
    best_esr: float | None = None
    steps_per_second: float | None = None
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    message: str = ""


#: Losses measured in dB per example: a run whose every term is one of these keeps the
#: weights with the best mean validation ESR *in dB* over the settings, so that each
#: setting counts alike, as in the loss (the plain mean ESR is ruled by the worst setting).
LOG_LOSSES = frozenset({"sdr", "sisdr"})


@dataclass
class ValidationResult:
    esr: float  #: mean over knob settings of each setting's ESR
    per_setting: list[dict[str, Any]]  #: [{"knobs": {name: normalised}, "physical": {...}, "esr": x}]

    @property
    def esr_db(self) -> float:
        """Mean over settings of 10·log10(ESR), dB (lower is better)."""
        values = [10.0 * math.log10(max(row["esr"], 1e-12)) for row in self.per_setting]
        return float(np.mean(values)) if values else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"esr": self.esr, "verdict": verdict(self.esr), "per_setting": self.per_setting}


@dataclass
class TrainResult:
    path: Path
    state_path: Path
    steps: int
    stopped: str
    best_esr: float
    best_step: int
    wall_seconds: float
    validation: ValidationResult
    training: dict[str, Any] = field(default_factory=dict)


def verdict(esr: float) -> str:
    return next(text for limit, text in VERDICTS if esr < limit)


def state_path_for(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".state")


# ------------------------------------------------------------------------- validation
@torch.no_grad()
def evaluate(model: nn.Module, val: ValidationSet, knob_specs, *, device: torch.device,
             batch_size: int = 16) -> ValidationResult:
    """ESR of ``model`` per knob setting of ``val`` (in eval mode); overall = their mean."""
    was_training = model.training
    model.eval()
    s = len(val.settings)
    err = torch.zeros(s, dtype=torch.float64)
    energy = torch.zeros(s, dtype=torch.float64)
    for i in range(0, val.inputs.shape[0], batch_size):
        x = val.inputs[i : i + batch_size].to(device)
        k = val.knobs[i : i + batch_size].to(device)
        y = val.targets[i : i + batch_size].to(torch.float64)
        pred = model(x, k).to("cpu", torch.float64)
        idx = val.setting[i : i + batch_size]
        err.index_add_(0, idx, (pred - y).pow(2).sum(dim=(1, 2)))
        energy.index_add_(0, idx, y.pow(2).sum(dim=(1, 2)))
    model.train(was_training)
    esr = (err / (energy + 1e-12)).tolist()
    rows = []
    for values, e in zip(val.settings, esr):
        rows.append({
            "knobs": {spec.name: v for spec, v in zip(knob_specs, values)},
            "physical": {spec.name: round(spec.to_physical(v), 6) for spec, v in zip(knob_specs, values)},
            "esr": e,
        })
    return ValidationResult(float(np.mean(esr)) if esr else math.nan, rows)


# ---------------------------------------------------------------------------- hardware
def hardware_info(device: torch.device, ctx: DistContext) -> dict[str, Any]:
    info: dict[str, Any] = {"device": device.type, "world_size": ctx.world_size,
                            "torch_threads": torch.get_num_threads(), "cpu_cores": os.cpu_count()}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = cpu
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# -------------------------------------------------------------------------- state file
def _save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={STATE_KEY: json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a training-state file -> (tensors, metadata); TrainingError if unusable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise TrainingError("no training state to resume from (was the run started with this -o?)", path=path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(STATE_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise TrainingError(f"corrupt training state ({e})", path=path) from None
    if raw is None:
        raise TrainingError("not an fxnet training-state file", path=path)
    meta = json.loads(raw)
    if int(meta.get("format_version", 0)) > STATE_FORMAT_VERSION:
        raise TrainingError("made by a newer fxnet; upgrade fxnet to resume", path=path)
    return tensors, meta


def _optimizer_to_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, scalars in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


# ------------------------------------------------------------------------------ trainer
class Trainer:
    """Runs one training session; see the module docstring. Use :func:`train`."""

    def __init__(self, model, data: DataSource, cfg: TrainConfig, *, output: str | Path, task: str = "apply",
                 meta: dict[str, Any] | None = None, resume: bool = False, data_seed: int | None = None,
                 ctx: DistContext | None = None, device: torch.device | None = None,
                 on_event: Callable[[TrainEvent], None] | None = None,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        from fxnet.train.losses import parse_loss

        cfg.check()
        self.ctx = ctx or DistContext()
        if cfg.batch_size % self.ctx.world_size:
            raise UsageError(f"--batch-size {cfg.batch_size} is not divisible by the {self.ctx.world_size} ranks")
        self.model, self.data, self.cfg = model, data, cfg
        self.output = Path(output)
        self.state_path = state_path_for(self.output)
        self.task, self.meta = task, dict(meta or {})
        self.device = device or torch.device("cpu")
        self.on_event = on_event if self.ctx.is_main else None
        self.loss_spec = cfg.loss if loss_fn is None else getattr(loss_fn, "spec", cfg.loss)
        self.loss_fn = loss_fn or parse_loss(cfg.loss)
        names = getattr(self.loss_fn, "names", None)
        #: "esr_db": keep the weights with the best mean per-setting ESR in dB (losses in dB); else "esr"
        self.select_by = "esr_db" if names and set(names) <= LOG_LOSSES else "esr"
        self.local_batch = cfg.batch_size // self.ctx.world_size
        self.rng = np.random.default_rng(cfg.seed if data_seed is None else data_seed)
        self.model.to(self.device)
        self.net = wrap(self.model, self.ctx, self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        spe = max(1, math.ceil(data.samples_per_epoch / (cfg.batch_size * data.layout.n)))
        self.steps_per_epoch = spe
        limits = [v for v in (cfg.steps, math.ceil(cfg.epochs * spe) if cfg.epochs else None) if v is not None]
        self.max_steps = min(limits) if limits else None
        self.step = 0
        self.elapsed_before = 0.0
        self.best_esr = math.inf
        self.best_score = math.inf  #: the selection criterion's value at best_step (see select_by)
        self.best_step = 0
        self.bad_validations = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_result: ValidationResult | None = None
        self.last_result: ValidationResult | None = None
        self.last_validated = -1
        self.history: list[dict[str, float]] = []  #: one entry per validation, see the module docstring
        self._loss_sum, self._loss_count = 0.0, 0  #: training losses since the last validation
        self.sched: Any = None
        self.probing = False
        self.timed = False  #: 1cycle on the clock (time budget only)
        if cfg.schedule == "onecycle":
            if self.max_steps is not None:
                self._make_onecycle(self.max_steps)
            else:
                self.timed = True
                self._set_timed_lr()
        else:
            self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="min", factor=0.5, patience=2)
        if resume:
            self._restore()
            sched_total = getattr(self.sched, "total_steps", None)
            if sched_total is not None and self.max_steps is not None and self.max_steps > sched_total:
                raise UsageError(
                    f"--resume: this run's 1cycle schedule was fixed at {sched_total} steps when it started and "
                    f"cannot stretch to {self.max_steps}; start a new run, or use --schedule plateau")

    # -- schedule ----------------------------------------------------------------
    def _make_onecycle(self, total: int) -> None:
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=self.cfg.lr, total_steps=max(2, int(total)), pct_start=self.cfg.pct_start)

    def _set_timed_lr(self) -> None:
        """Time-budget 1cycle: lr = the 1cycle curve at rank 0's elapsed / seconds."""
        progress = broadcast_float(self._elapsed() / self.cfg.seconds, self.ctx, self.device)
        lr = self.cfg.lr * one_cycle_factor(progress, self.cfg.pct_start)
        for g in self.opt.param_groups:
            g["lr"] = lr

    def _end_probe(self, seconds_per_step: float) -> None:
        left = max(0.0, self.cfg.seconds - self._elapsed())
        total = self.step + int(0.9 * left / max(seconds_per_step, 1e-9))
        total = int(broadcast_float(float(max(total, self.step + 2)), self.ctx, self.device))
        self._make_onecycle(total)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the scheduler did not see the probe's optimiser steps
            for _ in range(self.step):
                self.sched.step()
        self.probing = False
        self._emit("step", message=f"1cycle schedule fixed at {total} steps from the measured speed")

    @property
    def total_steps(self) -> int | None:
        if isinstance(self.sched, torch.optim.lr_scheduler.OneCycleLR):
            return self.sched.total_steps if self.max_steps is None else min(self.max_steps, self.sched.total_steps)
        return self.max_steps

    # -- state ---------------------------------------------------------------------
    def _elapsed(self) -> float:
        """Training seconds so far (this run's, plus those before a resume)."""
        t0 = getattr(self, "t0", None)
        return self.elapsed_before + (0.0 if t0 is None else time.perf_counter() - t0)

    def _config_dict(self) -> dict[str, Any]:
        return {k: getattr(self.cfg, k) for k in RESUME_FIELDS}

    def _save_state(self, rng_states: list[Any]) -> None:
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = _optimizer_to_state(self.opt)
        tensors.update(opt_tensors)
        tensors["rng/torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "format_version": STATE_FORMAT_VERSION,
            "step": self.step,
            "elapsed_seconds": self._elapsed(),
            "best_esr": self.best_esr if math.isfinite(self.best_esr) else None,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "best_step": self.best_step,
            "bad_validations": self.bad_validations,
            "last_validated": self.last_validated,
            "schedule": self.cfg.schedule,
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "optimizer": opt_meta,
            "numpy_rng": rng_states,
            "world_size": self.ctx.world_size,
            "config": self._config_dict(),
            "model": self.model.config(),
            "data": {k: v for k, v in self.data.summary().items() if k in ("source", "effect", "seed", "files")},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best_result": asdict(self.best_result) if self.best_result else None,
            "history": self.history,
            "loss_since_validation": [self._loss_sum, self._loss_count],
        }
        _save_state(self.state_path, tensors, meta)

    def _restore(self) -> None:
        tensors, meta = load_state(self.state_path)
        saved = meta.get("config", {})
        now = self.data.summary()
        for key, value in meta.get("data", {}).items():
            if now.get(key) != value:
                raise UsageError(f"--resume: the run in {self.state_path} trained on {key}={value!r}, not "
                                 f"{now.get(key)!r}; give the same data to continue it")
        for key in RESUME_FIELDS:
            if key in saved and saved[key] != getattr(self.cfg, key):
                raise UsageError(f"--resume: the run in {self.state_path} used {key}={saved[key]!r}, not "
                                 f"{getattr(self.cfg, key)!r}; give the same options to continue it")
        if meta.get("model") != self.model.config():
            raise UsageError(f"--resume: {self.state_path} holds a different model "
                             f"({meta.get('model', {}).get('arch')}); give the same --arch/--arch-config")
        weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        self.model.load_state_dict(weights)
        self.model.to(self.device)
        sched_state = meta.get("scheduler")
        if self.cfg.schedule == "onecycle" and sched_state is not None:
            self._make_onecycle(sched_state["total_steps"])
            self.probing = False
        _optimizer_from_state(self.opt, tensors, meta["optimizer"])  # moves moments to the params' device
        if self.sched is not None and sched_state is not None:
            self.sched.load_state_dict(sched_state)
        elif self.timed:
            self.elapsed_before = float(meta.get("elapsed_seconds", 0.0))
            self._set_timed_lr()
        torch.set_rng_state(tensors["rng/torch"])
        if "rng/cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        states = meta.get("numpy_rng") or []
        if meta.get("world_size") == self.ctx.world_size and self.ctx.rank < len(states):
            self.rng.bit_generator.state = states[self.ctx.rank]
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.step = int(meta["step"])
        self.elapsed_before = float(meta.get("elapsed_seconds", 0.0))
        self.best_esr = math.inf if meta.get("best_esr") is None else float(meta["best_esr"])
        score = meta.get("best_score", meta.get("best_esr"))  # states before best_score: ESR selection
        self.best_score = math.inf if score is None else float(score)
        self.best_step = int(meta.get("best_step", 0))
        self.bad_validations = int(meta.get("bad_validations", 0))
        self.last_validated = int(meta.get("last_validated", -1))
        self.history = list(meta.get("history", []))
        self._loss_sum, self._loss_count = meta.get("loss_since_validation", [0.0, 0])
        if meta.get("best_result"):
            self.best_result = ValidationResult(**meta["best_result"])
        if self.output.is_file() and self.best_result is not None:
            from safetensors.torch import load_file

            self.best_weights = load_file(str(self.output))

    # -- events --------------------------------------------------------------------
    def _emit(self, kind: str, **fields: Any) -> None:
        if self.on_event is None:
            return
        rate = self._rate()
        total = self.total_steps
        eta = None
        if rate and total is not None:
            eta = (total - self.step) / rate
        if self.cfg.seconds is not None:
            left = max(0.0, self.cfg.seconds - self._elapsed())
            eta = left if eta is None else min(eta, left)
        self.on_event(TrainEvent(kind=kind, step=self.step, total_steps=total, lr=self.opt.param_groups[0]["lr"],
                                 best_esr=None if math.isinf(self.best_esr) else self.best_esr,
                                 steps_per_second=rate, elapsed_seconds=self._elapsed(), eta_seconds=eta, **fields))

    def _rate(self) -> float | None:
        if len(self._times) < 2:
            return None
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    # -- checkpoints ---------------------------------------------------------------
    def _validate(self) -> bool:
        """Validate (rank 0, shared with all ranks); returns True when training should stop early."""
        result = None
        esr = score = math.nan
        if self.ctx.is_main:
            result = evaluate(self.model, self.data.validation, self.data.knob_specs, device=self.device)
            esr = result.esr
            score = result.esr_db if self.select_by == "esr_db" else esr
        esr = broadcast_float(esr, self.ctx, self.device)
        score = broadcast_float(score, self.ctx, self.device)
        self.last_validated = self.step
        self.last_result = result
        self.history.append({"seconds": round(self._elapsed(), 3), "step": self.step, "val_esr": esr,
                             **({"val_esr_db": score} if self.select_by == "esr_db" else {}),
                             "train_loss": self._loss_sum / self._loss_count if self._loss_count else None})
        self._loss_sum, self._loss_count = 0.0, 0
        improved = score < self.best_score
        if improved:
            self.best_esr, self.best_score, self.best_step, self.bad_validations = esr, score, self.step, 0
            if self.ctx.is_main:
                self.best_weights = {k: v.detach().to("cpu").clone() for k, v in self.model.state_dict().items()}
                self.best_result = result
        else:
            self.bad_validations += 1
        if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.sched.step(score)
        self._emit("validation", val_esr=esr)
        return self.cfg.patience is not None and self.bad_validations >= self.cfg.patience

    def _write_model(self, stopped: str | None) -> None:
        from fxnet.checkpoint import save_model

        model = self.model
        if self.best_weights is not None:
            model = copy.deepcopy(self.model).cpu()
            model.load_state_dict(self.best_weights)
        result = self.best_result or self.last_result
        summary = self._summary(stopped, result)
        data = self.meta.get("data", {})
        what = data.get("effect") or Path(str(data.get("wet_dir", "capture"))).name
        esr_text = f", val ESR {result.esr:.4g}" if result else ""
        save_model(model, self.output, task=self.task,
                   description=f"{what} ({'removal' if self.task == 'remove' else 'effect'}) trained by fxnet "
                               f"profile: {self.model.arch}, {self.step} steps{esr_text}",
                   training=summary)

    def _checkpoint(self, stopped: str | None = None, *, write_model: bool = True) -> None:
        states = all_gather_object(self.rng.bit_generator.state, self.ctx)
        if not self.ctx.is_main:
            return
        if write_model:
            self._write_model(stopped)
        self._save_state(states)
        self._emit("checkpoint")

    def _summary(self, stopped: str | None, result: ValidationResult | None) -> dict[str, Any]:
        cfg = self.cfg
        out = dict(self.meta)
        out.update({
            "task": self.task,
            "arch": self.model.arch,
            "steps": self.step,
            "epochs": round(self.step / self.steps_per_epoch, 3),
            "wall_seconds": round(self._elapsed(), 2),
            "stopped": stopped or "running",
            "hardware": hardware_info(self.device, self.ctx),
            "torch_version": torch.__version__,
            "loss": self.loss_spec,
            "optimizer": {"name": "AdamW", "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                          "grad_clip": cfg.grad_clip, "schedule": cfg.schedule,
                          "total_steps": self.total_steps, "amp": self.use_amp},
            "batch_size": cfg.batch_size,
            "segment_samples": self.data.layout.n,
            "seed": cfg.seed,
            "polarity_flip": cfg.polarity_flip,
            "best_step": self.best_step,
            "selected_by": self.select_by,
            "validation": result.to_dict() if result else None,
            "history": self.history,
        })
        return out

    # -- the loop --------------------------------------------------------------------
    def _stop_requested(self) -> bool:
        """Collective: True on every rank when rank 0's clock says the time is up."""
        if self.cfg.seconds is None:
            return False
        flag = torch.tensor([1.0 if self.ctx.is_main and self._elapsed() >= self.cfg.seconds else 0.0],
                            dtype=torch.float64, device=self.device)
        return bool(all_reduce_sum(flag, self.ctx).item() > 0)

    def _train_step(self) -> float:
        cfg = self.cfg
        x, y, k = self.data.sample(self.local_batch, self.rng, self.step)
        if cfg.polarity_flip:
            sign = torch.from_numpy(self.rng.choice(np.array([-1.0, 1.0], np.float32), size=x.shape[0]))
            x = x * sign[:, None, None]
            y = y * sign[:, None, None]
        x, y, k = x.to(self.device), y.to(self.device), k.to(self.device)
        self.net.train()
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp):
            pred = self.net(x, k)
        loss = self.loss_fn(pred.float(), y)
        value = all_reduce_sum(loss.detach().reshape(1).to(torch.float64), self.ctx).item() / self.ctx.world_size
        if not math.isfinite(value):
            raise TrainingError(self._nan_message("loss", value))
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)  # skips steps with Inf/NaN gradients and lowers the scale
            self.scaler.update()
        else:
            if not torch.isfinite(norm):
                raise TrainingError(self._nan_message("gradient norm", float(norm)))
            self.opt.step()
        if isinstance(self.sched, torch.optim.lr_scheduler.OneCycleLR):
            self.sched.step()
        self.step += 1
        if self.timed:
            self._set_timed_lr()
        return value

    def _nan_message(self, what: str, value: float) -> str:
        kept = (f"the last good checkpoint (step {self.last_checkpoint}) is kept in {self.output}"
                if self.last_checkpoint else "no checkpoint had been written yet")
        return (f"training diverged: the {what} became {value} at step {self.step + 1} "
                f"(lr {self.opt.param_groups[0]['lr']:.3g}); {kept}; try a lower --lr")

    def run(self) -> TrainResult:
        self.t0 = time.perf_counter()
        self._times: list[float] = []
        self.last_checkpoint = self.step if self.step and self.output.is_file() else 0
        resumed = f"; resuming at step {self.step}" if self.step else ""
        self._emit("start", message=f"{self.model.arch} model, {sum(p.numel() for p in self.model.parameters())} "
                                    f"parameters; {self.steps_per_epoch} steps per epoch{resumed}")
        stopped = None
        try:
            while stopped is None:
                total = self.total_steps
                if total is not None and self.step >= total:
                    stopped = "steps" if total == self.max_steps else "schedule"
                    break
                if self._stop_requested():
                    stopped = "seconds"
                    break
                loss = self._train_step()
                self._loss_sum += loss
                self._loss_count += 1
                self._times = (self._times + [time.perf_counter()])[-50:]
                if self.probing and self.step >= PROBE_STEPS:
                    done = self._times[-(PROBE_STEPS - 2):]
                    self._end_probe((done[-1] - done[0]) / max(1, len(done) - 1))
                if self.step % self.cfg.checkpoint_every == 0:
                    early = self._validate()
                    self._checkpoint()
                    self.last_checkpoint = self.step
                    if early:
                        stopped = "early stopping"
                self._emit("step", loss=loss)
        except KeyboardInterrupt:
            if not self.ctx.enabled:  # keep what was learnt; --resume continues from here
                self._checkpoint("interrupted", write_model=not self.output.is_file())
                self._emit("interrupted", message=f"interrupted at step {self.step}; the training state is "
                                                  f"saved in {self.state_path}: continue with --resume")
            raise
        if self.last_validated != self.step:
            self._validate()
        diff = max_replica_difference(self.model, self.ctx)
        if diff != 0.0:
            raise TrainingError(f"data-parallel replicas diverged (max weight difference {diff:g})")
        self.meta["replicas"] = {"world_size": self.ctx.world_size, "identical": True}
        self._checkpoint(stopped)
        result = self.best_result or self.last_result
        self._emit("end", message=stopped)
        return TrainResult(self.output, self.state_path, self.step, stopped, self.best_esr, self.best_step,
                           self._elapsed(), result, self._summary(stopped, result))


def train(model, data: DataSource, cfg: TrainConfig, *, output: str | Path, **options: Any) -> TrainResult:
    """Train ``model`` on ``data`` and write ``output`` (+ ``output.state``); see :class:`Trainer`."""
    return Trainer(model, data, cfg, output=output, **options).run()
