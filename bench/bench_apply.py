"""Bundled effect models: fidelity against their reference effects, and speed.

    python bench/bench_apply.py [--models comp4c,la2a] [--minutes 10] [--skip-speed]

Fidelity: ESR = Σ(y − ŷ)² / Σy² of the model's output ŷ against the reference effect's
output y, per knob setting (a grid of ≥ 16 settings including the extremes), over
held-out material: the rendered real instruments in examples/ and bench/data/ (guitar,
piano, bass and drums, strings — never used in training) and synthetic music clips from
a seed the training never drew. Both start from rest at the start of each clip. The
model runs through the streaming engine, exactly as `fxnet apply` runs it.

Speed: `fxnet apply` end to end (a fresh process: start-up, decode, model, encode) on a
10-minute 44.1 kHz mono and stereo 16-bit WAV, as audio duration / wall time; and the
wall time of `fxnet apply` on a 1-second file (start-up cost).
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
sys.path.insert(0, str(ROOT))  # this checkout, not an installed fxnet (subprocesses: cwd=ROOT)
SR = 44100
HELD_OUT_SEED = 987_654  # training draws seeds from the recipe's seed (0) upwards


def held_out_material() -> list[tuple[str, np.ndarray]]:
    from fxnet.synth import MUSIC_FAMILIES, generate

    clips = []
    for path in sorted([ROOT / "examples" / "guitar.flac", *(ROOT / "bench" / "data").glob("*.flac")]):
        x, sr = sf.read(path, dtype="float32")
        assert sr == SR, path
        clips.append((path.stem, x if x.ndim == 1 else x.mean(1)))
    synth = generate(6, 6 * SR, SR, seed=HELD_OUT_SEED, families=MUSIC_FAMILIES)
    clips += [(f"synth{i}", c) for i, c in enumerate(synth)]
    return clips


def knob_grid(effect, n_random: int = 8, seed: int = 1) -> list[list[float]]:
    k = len(effect.knobs)
    levels = []
    for spec in effect.knobs:
        if spec.steps:
            levels.append([i / (spec.steps - 1) for i in range(spec.steps)])
        elif k <= 2:
            levels.append([0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0])
        else:
            levels.append([0.0, 1.0])
    grid = [list(v) for v in itertools.product(*levels)]
    rng = np.random.default_rng(seed)
    if k > 2:  # corners plus interior points
        grid += [[round(float(v), 3) for v in rng.uniform(0.1, 0.9, k)] for _ in range(n_random)]
    return grid


def fidelity(name: str) -> dict:
    from fxnet.checkpoint import load_model
    from fxnet.effects import get_effect
    from fxnet.engine import process_tensor
    from fxnet.registry import resolve_model

    model, info = load_model(resolve_model(name))
    effect = get_effect(info.meta["training"].get("data", {}).get("effect", name))
    clips = held_out_material()
    rows = []
    t0 = time.perf_counter()
    for knobs in knob_grid(effect):
        err = ref = 0.0
        for _, x in clips:
            y = effect(x, SR, knobs)
            yhat = process_tensor(model, torch.from_numpy(x)[None], knobs=knobs, batch_size=4)[0].numpy()
            err += float(np.sum((y - yhat) ** 2))
            ref += float(np.sum(y.astype(np.float64) ** 2))
        rows.append((knobs, err / ref))
    esr = np.array([r[1] for r in rows])
    print(f"\n{name}: ESR vs the reference effect on held-out material "
          f"({len(clips)} clips, {sum(len(c) for _, c in clips) / SR:.0f} s, {len(rows)} knob settings, "
          f"{time.perf_counter() - t0:.0f} s)")
    names = [s.name for s in effect.knobs]
    print("  " + "  ".join(f"{n:>14}" for n in names) + "         ESR")
    for knobs, e in rows:
        phys = [s.to_physical(v) for s, v in zip(effect.knobs, knobs)]
        print("  " + "  ".join(f"{p:14.4g}" for p in phys) + f"  {e:10.5f}")
    print(f"  median ESR {np.median(esr):.5f}   worst {esr.max():.5f}   (targets: median <= 0.01, worst <= 0.03)")
    return {"median": float(np.median(esr)), "worst": float(esr.max())}


def make_file(path: Path, minutes: float, channels: int) -> Path:
    if path.exists() and sf.info(path).frames == int(minutes * 60 * SR):
        return path
    base, _ = sf.read(ROOT / "examples" / "guitar.flac", dtype="float32")
    total = int(minutes * 60 * SR)
    with sf.SoundFile(path, "w", SR, channels, subtype="PCM_16") as f:
        done = 0
        while done < total:
            n = min(len(base), total - done)
            block = np.stack([np.roll(base, 4410 * c)[:n] for c in range(channels)], 1)
            f.write(block)
            done += n
    return path


def speed(name: str, minutes: float, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    print(f"\n{name}: `fxnet apply` end to end, fresh process, 2 CPU cores")
    for channels in (1, 2):
        src = make_file(work / f"{minutes:g}min_{channels}ch.wav", minutes, channels)
        best = 1e9
        for _ in range(2):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "fxnet", "apply", str(src), "-o", str(work / "out.wav"), "--model",
                            name, "--force", "-q"], check=True, cwd=ROOT)
            best = min(best, time.perf_counter() - t)
        label = "mono" if channels == 1 else "stereo"
        target = 100 if channels == 1 else 50
        print(f"  {minutes:g} min 44.1 kHz {label:6s}: {best:6.2f} s wall = {minutes * 60 / best:6.0f}x real time "
              f"(target >= {target}x)")
    one = make_file(work / "1s.wav", 1 / 60, 1)
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fxnet", "apply", str(one), "-o", str(work / "out1.wav"), "--model",
                        name, "--force", "-q"], check=True, cwd=ROOT)
        walls.append(time.perf_counter() - t)
    print(f"  1-second file: {min(walls):.2f} s wall (best of 3; target <= 2 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="comp4c,la2a")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-fidelity", action="store_true")
    ap.add_argument("--dir", default="/tmp/fxnet-bench")
    args = ap.parse_args()
    for name in args.models.split(","):
        if not args.skip_fidelity:
            fidelity(name)
        if not args.skip_speed:
            speed(name, args.minutes, Path(args.dir))


if __name__ == "__main__":
    main()
