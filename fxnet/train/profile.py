"""``fxnet profile`` as one library call: data + model + training loop.

:func:`profile` reads the torchrun environment, sets the torch thread count, loads or
generates the data, builds the model (knob specs from the data or the effect, sample rate
from the data), and runs :func:`fxnet.train.loop.train`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fxnet.errors import CheckpointError, OutputError, UsageError
from fxnet.knobs import KnobSpec
from fxnet.train.data import Direction, Split
from fxnet.train.loop import DEFAULT_ARCH, TrainConfig, TrainEvent, TrainResult, state_path_for

#: Sample rate of --synth data unless --sample-rate says otherwise.
SYNTH_SAMPLE_RATE = 44100


@dataclass
class ProfileRequest:
    """Everything ``fxnet profile`` was asked to do."""

    output: Path
    dry_dir: Path | None = None
    wet_dir: Path | None = None
    synth: str | None = None
    direction: Direction = "apply"
    arch: str | None = None  #: None: DEFAULT_ARCH, or the --init model's architecture
    arch_config: dict[str, Any] = field(default_factory=dict)
    sample_rate: int | None = None
    knob_ranges: Sequence[KnobSpec] = ()
    max_lag_ms: float = 100.0
    split: Split = "auto"
    allow_clipping: bool = False
    families: Sequence[str] | None = None  #: --synth material families (default: all)
    peak_dbfs: tuple[float, float] | None = None  #: --synth clip peak level range (default: as generated)
    pool_clips: int = 256
    onset_share: float = 0.0  #: --synth examples that start from silence inside the crop
    val_clips: int = 4
    threads: int | None = None
    config: TrainConfig = field(default_factory=TrainConfig)
    resume: bool = False
    force: bool = False
    command: str = ""
    init: str | None = None  #: model (file, registry name or hf:// spec) whose weights start the run


def parse_arch_config(items: Sequence[str]) -> dict[str, Any]:
    """``["channels=16", "causal=false", "output=tanh"]`` -> ``{"channels": 16, ...}`` (JSON values, else text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--arch-config expects KEY=VALUE, got '{item}'")
        try:
            value = json.loads(text.strip().lower() if text.strip().lower() in ("true", "false", "null") else text)
        except ValueError:
            value = text.strip()
        out[key.strip()] = value
    return out


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def _state_step(path: Path) -> int:
    from fxnet.train.loop import load_state

    return int(load_state(path)[1]["step"])


def build_model(arch: str, *, sample_rate: int, knobs: Sequence[KnobSpec], arch_config: dict[str, Any], seed: int):
    """A fresh model of ``arch``, initialised from ``seed``."""
    from fxnet.models import build, get

    get(arch)  # UsageError listing the architectures
    torch.manual_seed(seed)
    try:
        return build({"arch": arch, "sample_rate": sample_rate, "knobs": [k.to_dict() for k in knobs], **arch_config})
    except CheckpointError as e:
        raise UsageError(f"--arch-config: {e}") from None
    except ValueError as e:
        raise UsageError(f"--arch-config: {e}") from None


def load_init(spec: str, *, direction: str, arch: str | None, arch_config: dict[str, Any]):
    """The model named by ``--init``, as the start of a new run: its architecture and
    hyper-parameters, ``arch_config`` entries overriding them (only those that keep the
    weights' shapes, e.g. declip's ``max_clip_level``), and its weights. Returns
    ``(model, meta)`` with ``meta`` describing where the weights came from."""
    from fxnet.checkpoint import load_model
    from fxnet.models import build
    from fxnet.registry import file_sha256, resolve_model

    path = resolve_model(spec)
    base, info = load_model(path)
    if info.task != direction:
        raise UsageError(f"--init {spec}: is a model for '{info.task}', and this run trains --direction {direction}")
    config = base.config()
    if arch is not None and arch != config["arch"]:
        raise UsageError(f"--init {spec}: is a '{config['arch']}' model, not --arch {arch}")
    config.update(arch_config)
    try:
        model = build(config)
        model.load_state_dict(base.state_dict(), strict=True)
    except (CheckpointError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise UsageError(f"--init {spec}: --arch-config {arch_config} does not fit its weights ({first})") from None
    meta = {"model": spec, "file": path.name, "sha256": file_sha256(path), "name": info.meta.get("name"),
            "steps": (info.meta.get("training") or {}).get("steps")}
    return model.train(), meta


class KnobFree:
    """A data source whose knobs the model does not see (removal): batches and the
    validation set carry (B, 0) knobs; ``knob_specs`` still name the validation settings."""

    def __init__(self, data: Any) -> None:
        from dataclasses import replace

        self._data = data
        self.validation = replace(data.validation, knobs=data.validation.knobs[:, :0])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def sample(self, batch: int, rng: np.random.Generator, step: int) -> tuple[torch.Tensor, ...]:
        x, y, k = self._data.sample(batch, rng, step)
        return x, y, k[:, :0]


def profile(
    req: ProfileRequest, *, on_event: Callable[[TrainEvent], None] | None = None,
    on_data: Callable[[Any], None] | None = None, loss_fn=None,
) -> TrainResult:
    """Train a model as ``req`` says; returns the result (rank 0's, under torchrun)."""
    from fxnet.train import ddp
    from fxnet.train.data import CropLayout, FolderData, discover_pairs, load_pairs
    from fxnet.train.loop import train
    from fxnet.train.synthdata import SynthData

    cfg = req.config
    cfg.check()
    if (req.synth is None) == (req.dry_dir is None or req.wet_dir is None):
        raise UsageError("give either DRY_DIR WET_DIR or --synth EFFECT")
    if req.direction not in ("apply", "remove"):
        raise UsageError(f"--direction must be 'apply' or 'remove', got '{req.direction}'")
    output = Path(req.output)
    if req.resume:
        start_step = _state_step(state_path_for(output))
    else:
        start_step = 0
        if output.exists() and not req.force:
            raise OutputError("exists; pass --force to overwrite it or --resume to continue its training",
                              path=output)
    init_model = init_meta = None
    if req.init is not None:
        init_model, init_meta = load_init(req.init, direction=req.direction, arch=req.arch,
                                          arch_config=req.arch_config)
        if req.sample_rate is not None and req.sample_rate != init_model.sample_rate:
            raise UsageError(f"--init {req.init}: runs at {init_model.sample_rate} Hz, not --sample-rate "
                             f"{req.sample_rate}")
    rate = req.sample_rate or (init_model.sample_rate if init_model is not None else None)
    ctx = ddp.context_from_env()
    device = ddp.device_for(ctx, cfg.device)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(req.threads or ddp.default_threads(ctx))
    ddp.setup(ctx, device)
    try:
        if req.synth is not None:
            from fxnet.effects import get_effect

            if req.knob_ranges:
                raise UsageError("--knob-range is for recorded data; --synth takes the effect's knob ranges")
            specs = get_effect(req.synth).knobs
            sample_rate = rate or SYNTH_SAMPLE_RATE
            pairs = None
        else:
            found, specs = discover_pairs(req.dry_dir, req.wet_dir, ranges=req.knob_ranges)
            pairs, sample_rate = load_pairs(found, sample_rate=rate, max_lag_ms=req.max_lag_ms,
                                            allow_clipping=req.allow_clipping)
        # A remover is not told how the audio was distorted: it takes no knobs, and the
        # effect's knobs only group its validation settings.
        model_specs = () if req.direction == "remove" else specs
        if init_model is None:
            model = build_model(req.arch or DEFAULT_ARCH, sample_rate=sample_rate, knobs=model_specs,
                                arch_config=req.arch_config, seed=cfg.seed)
        else:
            have = [k.to_dict() for k in init_model.knob_specs]
            want = [k.to_dict() for k in model_specs]
            if have != want:
                raise UsageError(f"--init {req.init}: its knobs {have or 'none'} differ from this data's "
                                 f"{want or 'none'} (names and ranges must match)")
            model = init_model
        layout = CropLayout.from_geometry(model.geometry, cfg.segment)
        data_seed = _derive_seed(cfg.seed, ctx.rank)
        if pairs is None:
            data = SynthData(req.synth, layout=layout, sample_rate=sample_rate, seed=cfg.seed, data_seed=data_seed,
                             direction=req.direction, pool_clips=req.pool_clips, val_clips=req.val_clips,
                             families=req.families, peak_dbfs=req.peak_dbfs, start_step=start_step,
                             onset_share=req.onset_share)
        else:
            data = FolderData(pairs, layout=layout, knob_specs=specs, sample_rate=sample_rate,
                              model_channels=model.geometry.channels, direction=req.direction, split=req.split,
                              seed=cfg.seed, dry_dir=str(req.dry_dir), wet_dir=str(req.wet_dir))
        if req.direction == "remove" and data.knob_specs:
            data = KnobFree(data)
        if on_data is not None and ctx.is_main:
            on_data(data)
        meta = {"data": data.summary(), "direction": req.direction, "command": req.command,
                "arch_config": req.arch_config}
        if init_meta is not None:
            meta["init"] = init_meta
        return train(model, data, cfg, output=output, task=req.direction, meta=meta, resume=req.resume,
                     data_seed=data_seed, ctx=ctx, device=device, on_event=on_event, loss_fn=loss_fn)
    finally:
        ddp.teardown(ctx)
        torch.set_num_threads(threads_before)
