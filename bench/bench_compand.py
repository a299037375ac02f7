"""`fxnet profile` of third-party gear: SoX's `compand`, run by the real `sox` binary.

    python bench/bench_compand.py [--seconds 1800] [--dir /tmp/fxnet-compand] [--plot-curve curve.png]
    python bench/bench_compand.py --eval-only --dir /tmp/fxnet-compand   # score a trained model again

Training pairs: ~10 minutes of synthetic music (fxnet.synth MUSIC_FAMILIES, seed 4321, peaks
-12...-1 dBFS) in 27 files (``--grid 4``: 64), each re-recorded by ``sox dry.wav wet.wav compand
ATTACK,DECAY 6:-90,-90,T,T,0,T+(0-T)/R 0 -90 0`` at one point of a 3 x 3 x 3 grid of three knobs:
threshold T (-40...-20 dB), ratio R (2...8) and attack (2...50 ms); decay is fixed at 200 ms,
the soft knee at 6 dB, the initial level at -90 dB (quiet, as a model starts) and the delay
(look-ahead) at 0. Knob values are physical, in SignalTrain-style names
(``take07__-30__5__26.wav``), with ``--knob-range`` giving the ranges. fxnet profile measures
each pair's latency (expected 0 samples); the lags it found are printed from the model's
training summary.

Held-out evaluation: material never seen in training (examples/guitar.flac,
bench/data/*.flac: rendered real instruments, peaks -3 dBFS) through the same sox compand at
11 settings (the 8 corners of the trained grid, the centre and two other interior points),
processed by the trained model with `fxnet apply` (the CLI, one process per setting).
Prints ESR per setting, median and worst, and writes bench/out/compand.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SR = 44100
MINUTES = 10.0
DECAY_S = 0.2
KNEE_DB = 6.0
#: A wet file closer than this (dB, wet-dry difference re dry) to its dry file is a bypass.
BYPASS_DB = -80.0
#: Physical ranges of the three knobs (threshold dB, ratio, attack ms), for --knob-range.
RANGES = ((-40.0, -20.0), (2.0, 8.0), (2.0, 50.0))
KNOB_RANGES = ("threshold=-40:-20:dB", "ratio=2:8", "attack=2:50:ms")
#: Default trained grid: 3 values per knob (the ends and the middle of each range).
THRESHOLDS, RATIOS, ATTACKS_MS = (tuple(float(v) for v in np.linspace(lo, hi, 3)) for lo, hi in RANGES)
#: Held-out settings: the 8 corners of the ranges, the centre, 2 other interior points.
HELD_OUT = [*itertools.product(*RANGES), (-30.0, 5.0, 26.0), (-35.0, 3.5, 10.0), (-25.0, 6.5, 40.0)]
#: Training loss. ESR pools error and energy over the batch, so heavily compressed (quiet)
#: settings weigh up to ~20 dB less than light ones; "esr+0.5*mrstft" (whose log-magnitude
#: term weighs every level alike) was tried and did worse in 30 minutes, with a third fewer
#: steps (see docs/benchmarks.md).
LOSS = "esr"
TRAIN_ARGS = ["--arch", "dynamics", "--arch-config", "channels=24", "--arch-config", "layers=10",
              "--arch-config", "hop=32", "--segment", "32768", "--batch-size", "8", "--lr", "0.003", "--checkpoint-every", "250", "--seed", "0", "--threads", "1"]


def compand_args(threshold: float, ratio: float, attack_ms: float) -> list[str]:
    """sox compand arguments: a `ratio`:1 compressor above `threshold` dB, unity below."""
    top = threshold - threshold / ratio  # output level for a 0 dB input
    points = f"{KNEE_DB:g}:-90,-90,{threshold:g},{threshold:g},0,{top:.4f}"
    return ["compand", f"{attack_ms / 1000:g},{DECAY_S:g}", points, "0", "-90", "0"]


def run_sox(src: Path, dst: Path, knobs: tuple[float, float, float]) -> np.ndarray:
    """Process ``src`` into ``dst`` (32-bit float WAV) with sox compand; refuse a clipped result."""
    cmd = ["sox", "-V1", str(src), "-b", "32", "-e", "floating-point", str(dst), *compand_args(*knobs)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode or "clip" in res.stderr.lower():
        raise SystemExit(f"{' '.join(cmd)}: rc {res.returncode} {res.stderr.strip()}")
    y, sr = sf.read(dst, dtype="float32")
    if sr != SR or np.abs(y).max() >= 1.0:
        raise SystemExit(f"{dst}: sample rate {sr}, peak {np.abs(y).max():.3f} (clipped output)")
    return y


def knob_grid(n: int) -> list[tuple[float, ...]]:
    """``n`` evenly spaced values per knob over RANGES, every combination (rounded for file names)."""
    return list(itertools.product(*(np.round(np.linspace(lo, hi, n), 2).tolist() for lo, hi in RANGES)))


def trained_grid(wet_dir: Path) -> dict[str, list[float]]:
    """The knob values per knob found in the training pairs' names (SignalTrain style)."""
    from fxnet.train.data import signaltrain_name

    knobs = [signaltrain_name(p.stem)[1] for p in wet_dir.glob("*.wav")]
    return {name: sorted({k[i] for k in knobs}) for i, name in enumerate(("threshold_db", "ratio", "attack_ms"))}


def make_pairs(work: Path, n_grid: int = 3) -> int:
    """Write work/dry/takeNN.wav and work/wet/takeNN__T__R__A.wav; returns the number of pairs."""
    from fxnet.synth import MUSIC_FAMILIES, generate

    grid = knob_grid(n_grid)
    dry_dir, wet_dir = work / "dry", work / "wet"
    dry_dir.mkdir(parents=True, exist_ok=True)
    wet_dir.mkdir(parents=True, exist_ok=True)
    clips = generate(len(grid), int(MINUTES * 60 / len(grid) * SR), SR, seed=4321, families=MUSIC_FAMILIES)
    # recording levels: peaks between -12 and -1 dBFS, so that every setting compresses
    peaks = 10 ** (np.random.default_rng(4321).uniform(-12, -1, len(clips)) / 20)
    clips = clips * (peaks / np.abs(clips).max(axis=1))[:, None]
    worst, weakest, raised = -np.inf, np.inf, 0
    for i, (knobs, dry) in enumerate(zip(grid, clips)):
        name = "__".join(f"{v:g}" for v in knobs)
        while True:
            sf.write(dry_dir / f"take{i:02d}.wav", dry, SR, subtype="FLOAT")
            y = run_sox(dry_dir / f"take{i:02d}.wav", wet_dir / f"take{i:02d}__{name}.wav", knobs)
            diff = 10 * np.log10(np.sum((y - dry) ** 2) / np.sum(dry ** 2))
            # a clip that never reaches the threshold is a bypass, which fxnet profile refuses:
            # record it 3 dB louder (up to -1 dBFS)
            if diff > BYPASS_DB or np.abs(dry).max() > 10 ** (-4 / 20):
                break
            dry, raised = dry * np.float32(10 ** (3 / 20)), raised + 1
        worst = max(worst, 20 * np.log10(np.abs(y).max()))
        weakest = min(weakest, diff)
    print(f"{len(grid)} pairs, {MINUTES:g} minutes ({raised} level raise(s) of 3 dB against a bypass); highest wet "
          f"peak {worst:.1f} dBFS (no clipping); smallest wet-dry difference {weakest:.1f} dB below the dry signal",
          flush=True)
    return len(grid)


def train(work: Path, seconds: float, loss: str) -> Path:
    """Run `python -m fxnet profile` on the pairs; its progress goes to work/train.log."""
    out = work / "compand.safetensors"
    cmd = [sys.executable, "-m", "fxnet", "profile", str(work / "dry"), str(work / "wet"), "-o", str(out),
           "--force", *[a for r in KNOB_RANGES for a in ("--knob-range", r)], *TRAIN_ARGS, "--loss", loss,
           "--seconds", f"{seconds:g}"]
    print(f"training ({work / 'train.log'}): {' '.join(cmd[2:])}", flush=True)
    t = time.perf_counter()
    with open(work / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(f"trained in {time.perf_counter() - t:.0f} s wall", flush=True)
    return out


def held_out_esr(model_path: Path, work: Path) -> dict:
    """ESR of `fxnet apply` against sox compand on the held-out clips at every HELD_OUT setting."""
    from fxnet.checkpoint import read_header

    sources = sorted([ROOT / "examples" / "guitar.flac", *(ROOT / "bench" / "data").glob("*.flac")])
    ev = work / "eval"
    ev.mkdir(exist_ok=True)
    dry = np.concatenate([sf.read(p, dtype="float32")[0] for p in sources])
    dry_path = ev / "dry.wav"
    sf.write(dry_path, dry, SR, subtype="FLOAT")  # one file: every clip, back to back
    rows = []
    for knobs in HELD_OUT:
        ref = run_sox(dry_path, ev / "sox.wav", knobs).astype(np.float64)
        cmd = [sys.executable, "-m", "fxnet", "apply", str(dry_path), "-o", str(ev / "model.wav"), "--force",
               "--model", str(model_path), "--bits", "32f", "--quiet",
               *[a for name, v in zip(("threshold", "ratio", "attack"), knobs) for a in ("--knob", f"{name}={v:g}")]]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if res.returncode:
            raise SystemExit(f"{' '.join(cmd)}: {res.stderr.strip()}")
        est = sf.read(ev / "model.wav", dtype="float64")[0]
        esr = float(np.sum((ref - est) ** 2) / np.sum(ref ** 2))
        gr = float(10 * np.log10(np.sum(ref ** 2) / np.sum(dry.astype(np.float64) ** 2)))
        rows.append({"threshold_db": knobs[0], "ratio": knobs[1], "attack_ms": knobs[2], "esr": esr,
                     "level_change_db": round(gr, 2)})
        print(f"  threshold {knobs[0]:g} dB, ratio {knobs[1]:g}, attack {knobs[2]:g} ms "
              f"(sox level change {gr:+.1f} dB): ESR {esr:.5f}", flush=True)
    esrs = np.array([r["esr"] for r in rows])
    info = read_header(model_path)
    training = info.meta.get("training") or {}
    print(f"held-out ESR over {len(rows)} settings on rendered real instruments ({dry.size / SR:.0f} s): "
          f"median {np.median(esrs):.5f}, mean {esrs.mean():.5f}, worst {esrs.max():.5f} (target <= 0.02)")
    return {"held_out": {"material": [str(p.relative_to(ROOT)) for p in sources], "seconds": dry.size / SR,
                         "settings": rows, "median_esr": float(np.median(esrs)), "mean_esr": float(esrs.mean()),
                         "worst_esr": float(esrs.max())},
            "training": training}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1800, help="training budget (default 1800)")
    ap.add_argument("--dir", default="/tmp/fxnet-compand", help="work folder (pairs, model, logs)")
    ap.add_argument("--grid", type=int, default=3, help="knob values per knob in the training grid (default 3)")
    ap.add_argument("--loss", default=LOSS, help=f"training loss (default {LOSS!r})")
    ap.add_argument("--eval-only", action="store_true", help="score the model already trained in --dir")
    ap.add_argument("--no-eval", action="store_true", help="make the pairs and train only")
    ap.add_argument("--plot-curve", metavar="PNG", help="draw validation ESR vs training minutes into PNG")
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "compand.json"), help="results file")
    args = ap.parse_args()
    work = Path(args.dir)
    out = work / "compand.safetensors"
    if not args.eval_only:
        make_pairs(work, args.grid)
        train(work, args.seconds, args.loss)
    if args.no_eval:
        return
    results = held_out_esr(out, work)
    training = results.pop("training")
    lags = [p["lag_samples"] for p in training.get("data", {}).get("pairs", [])]
    if lags:
        print(f"latency found by fxnet profile: {min(lags)}...{max(lags)} samples over {len(lags)} pairs")
    results.update({
        "command": f"sox compand ATTACK,{DECAY_S:g} {KNEE_DB:g}:-90,-90,T,T,0,T-T/R 0 -90 0",
        "trained_grid": trained_grid(work / "wet"),
        "lags_samples": lags,
        "training": {k: training.get(k) for k in ("arch", "steps", "wall_seconds", "stopped", "hardware",
                                                  "batch_size", "segment_samples", "command", "history")},
        "validation_esr": (training.get("validation") or {}).get("esr"),
    })
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    if args.plot_curve:
        from bench_profile import plot_curve

        plot_curve(out, args.plot_curve, title="fxnet profile: sox compand from folder pairs")
        print(f"wrote {args.plot_curve}")


if __name__ == "__main__":
    main()
