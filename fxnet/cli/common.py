"""Steps shared by the processing commands: plan the jobs, load the model."""

from __future__ import annotations

from pathlib import Path

from fxnet.errors import UsageError


def plan_jobs(inputs: list[str], output: str | None, *, suffix: str, template: str | None,
              model_name: str, as_json: bool):
    from fxnet.batch import expand_inputs, plan_outputs, shard

    if as_json and output == "-":
        raise UsageError("--json and -o - both want stdout; choose one")
    jobs = expand_inputs(inputs)
    jobs = plan_outputs(jobs, output, suffix=suffix, template=template, model_name=Path(model_name).stem)
    return shard(jobs)


def load_for_processing(model: str, *, device: str, batch_size: int | None, chunk_seconds, overlap, rate, bits,
                        fmt, force, clip_mode, dry_wet=1.0, gain_db=0.0):
    """Resolve and load a model; returns (FileProcessor, CheckpointInfo, display name)."""
    from fxnet.checkpoint import load_model
    from fxnet.process import FileProcessor, ProcessOptions, default_device
    from fxnet.registry import resolve_model

    dev = default_device(device)
    path = resolve_model(model)
    net, info = load_model(path, device=dev)
    opts = ProcessOptions(device=dev, batch_size=batch_size, chunk_seconds=chunk_seconds,
                          overlap_seconds=overlap, rate=rate, bits=bits, format=fmt, force=force,
                          clip_mode=clip_mode, dry_wet=dry_wet, gain_db=gain_db)
    return FileProcessor(net, options=opts), info, info.meta.get("name") or Path(path).stem
