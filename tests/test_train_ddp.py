"""Data-parallel training under torchrun on CPU (gloo): two ranks, one model.

What is asserted, and why: the run completes, the step count is the requested one, only
rank 0 wrote the files, and the two replicas' weights are bit-identical after training
(the loop compares every rank's parameters with rank 0's and refuses to write a model
if they differ). Equality with a single process at the same total batch is *not*
asserted: each rank draws its own data stream (seeded by rank), as scale-out needs, so a
single process sees different examples by design.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from fxnet.checkpoint import load_model
from fxnet.train.loop import load_state, state_path_for


def test_two_ranks_on_cpu_train_identical_replicas(tmp_path):
    model = tmp_path / "ddp.safetensors"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "fxnet", "profile", "--synth", "comp4c", "--arch", "fir", "--arch-config", "taps=16",
           "-o", str(model), "--steps", "6", "--checkpoint-every", "3", "--batch-size", "8", "--segment", "1024",
           "--synth-pool", "8", "--val-clips", "1", "--json"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # only rank 0 prints
    assert summary["steps"] == 6
    training = summary["training"]
    assert training["replicas"] == {"world_size": 2, "identical": True}
    assert training["hardware"]["world_size"] == 2 and training["batch_size"] == 8
    net, info = load_model(model)
    assert info.meta["training"]["steps"] == 6
    tensors, meta = load_state(state_path_for(model))
    assert meta["world_size"] == 2 and meta["step"] == 6
    assert len(meta["numpy_rng"]) == 2 and meta["numpy_rng"][0] != meta["numpy_rng"][1]  # one stream per rank
    assert torch.equal(tensors["model/h0"], net.h0.detach()) or meta["best_step"] != 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.safetensors", "ddp.safetensors.state"]
