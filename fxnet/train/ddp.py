"""Data-parallel training under torchrun: process group, DDP wrapper, collectives.

``torchrun --nproc-per-node N -m fxnet profile ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; :func:`context_from_env` reads them and :func:`setup` joins the process
group (gloo on CPU, nccl on CUDA). Every rank builds the same model from the same seed
(DDP also broadcasts rank 0's weights), draws its own data stream (seeded by rank), and
gradients are averaged, so the replicas stay identical; :func:`max_replica_difference`
checks that at the end. Only rank 0 writes checkpoints and logs. Without torchrun every
function here is a no-op on a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fxnet.errors import UsageError


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) training run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (single process when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise UsageError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (are you under torchrun?)") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return DistContext(rank, world, local, max(1, local_world))


def device_for(ctx: DistContext, requested: str) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` under torchrun on CUDA."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(requested)
    if dev.type == "cuda" and ctx.enabled and dev.index is None:
        dev = torch.device("cuda", ctx.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def setup(ctx: DistContext, device: torch.device) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA); a no-op for one process."""
    if not ctx.enabled:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=ctx.rank, world_size=ctx.world_size)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def default_threads(ctx: DistContext) -> int:
    """CPU threads for torch: this machine's cores shared by the ranks on it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // ctx.local_world_size)


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` under torchrun, else the model itself."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``t`` over the ranks (in place; returned for convenience)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_float(value: float, ctx: DistContext, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank."""
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def all_gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (a JSON-like value), in rank order."""
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def max_replica_difference(model: nn.Module, ctx: DistContext) -> float:
    """Largest |w - w_rank0| over all parameters and ranks (0.0 for a single process)."""
    if not ctx.enabled:
        return 0.0
    import torch.distributed as dist

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max() if flat.numel() else flat.new_zeros(())
    diff = diff.reshape(1).to(torch.float64)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())
