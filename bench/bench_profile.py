"""`fxnet profile` from folders: learn comp4c from ~10 minutes of dry/wet pairs on a knob
grid, then score the model on held-out material (rendered real instruments).

    python bench/bench_profile.py [--seconds 1800] [--dir /tmp/fxnet-profile]

The pairs are made with fxnet's reference comp4c from synthetic music (seed 1234); the
held-out material (examples/guitar.flac, bench/data/*.flac) is never seen in training.
Prints the training command, then the held-out ESR per knob setting, median and worst.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
SR = 44100


def make_pairs(work: Path) -> int:
    from fxnet.effects import get_effect
    from fxnet.synth import generate

    comp = get_effect("comp4c")
    # 36 settings (threshold -30/-21/-12 dB); ratio 1 or a threshold above the peaks would
    # be a bypass, which the pair checks rightly refuse
    grid = list(itertools.product([0.0, 0.3, 0.6], [0.25, 0.5, 1.0], [0.0, 1.0], [0.0, 1.0]))
    seconds = 600 / len(grid)
    dry_dir, wet_dir = work / "dry", work / "wet"
    dry_dir.mkdir(parents=True, exist_ok=True)
    wet_dir.mkdir(parents=True, exist_ok=True)
    clips = generate(len(grid), int(seconds * SR), SR, seed=1234)
    # recording levels: peaks between -12 and -1 dBFS, so that every setting compresses
    peaks = 10 ** (np.random.default_rng(1234).uniform(-12, -1, len(clips)) / 20)
    clips = clips * (peaks / np.abs(clips).max(axis=1))[:, None]
    for i, (knobs, dry) in enumerate(zip(grid, clips)):
        sf.write(dry_dir / f"take{i:02d}.wav", dry, SR, subtype="FLOAT")
        name = "__".join(f"{v:g}" for v in knobs)
        sf.write(wet_dir / f"take{i:02d}__{name}.wav", comp(dry, SR, list(knobs)), SR, subtype="FLOAT")
    return len(grid)


def held_out_esr(model_path: Path) -> None:
    from fxnet.checkpoint import load_model
    from fxnet.effects import get_effect
    from fxnet.engine import process_tensor

    model, _ = load_model(model_path)
    comp = get_effect("comp4c")
    clips = []
    for p in sorted([ROOT / "examples" / "guitar.flac", *(ROOT / "bench" / "data").glob("*.flac")]):
        x, _ = sf.read(p, dtype="float32")
        clips.append(x)
    rng = np.random.default_rng(1)
    settings = [list(c) for c in itertools.product([0.0, 1.0], repeat=4)]
    settings += [[round(float(v), 3) for v in rng.uniform(0.1, 0.9, 4)] for _ in range(8)]
    esrs = []
    for knobs in settings:
        err = ref = 0.0
        for x in clips:
            y = comp(x, SR, knobs)
            yhat = process_tensor(model, torch.from_numpy(x)[None], knobs=knobs)[0].numpy()
            err += float(np.sum((y - yhat) ** 2))
            ref += float(np.sum(y.astype(np.float64) ** 2))
        esrs.append(err / ref)
        print(f"  knobs {knobs}: ESR {esrs[-1]:.5f}")
    esrs = np.array(esrs)
    print(f"held-out ESR over {len(settings)} settings on rendered real instruments: "
          f"median {np.median(esrs):.5f}, mean {esrs.mean():.5f}, worst {esrs.max():.5f} (target <= 0.02)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1800)
    ap.add_argument("--dir", default="/tmp/fxnet-profile")
    args = ap.parse_args()
    work = Path(args.dir)
    n = make_pairs(work)
    out = work / "comp4c_from_folders.safetensors"
    cmd = [sys.executable, "-m", "fxnet", "profile", str(work / "dry"), str(work / "wet"), "-o", str(out), "--force",
           "--arch", "dynamics", "--arch-config", "channels=24", "--arch-config", "layers=9", "--segment", "16384",
           "--loss", "esr", "--seconds", str(args.seconds), "--checkpoint-every", "500"]
    print(f"{n} pairs, {600 / 60:.0f} minutes of audio; training: {' '.join(cmd[2:])}", flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"trained in {time.perf_counter() - t:.0f} s wall")
    held_out_esr(out)


if __name__ == "__main__":
    main()
