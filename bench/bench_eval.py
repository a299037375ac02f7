"""Time `fxnet eval` on 100 four-second 44.1 kHz pairs: seconds per metric and in total.

Run: ``python bench/bench_eval.py [--pairs 100] [--seconds 4] [--metrics ...] [--cli]``.
Not a test: timings depend on the machine and its load. The pairs are synthetic
music-like clips (``fxnet.synth.generate``) hard-clipped to an input SDR drawn from
[1, 20] dB (``fxnet.effects.clipping.clip_to_input_sdr``, the SignalTrain-HC protocol),
written as 16-bit WAV to a temporary folder. The library path the CLI uses
(``fxnet.metrics.evaluate.evaluate``) is timed per metric, including reading and
checking the files ("load"); ``--cli`` also times the whole command in a subprocess
(interpreter start-up, imports and table rendering included). The issue's target:
all metrics but FAD within 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from fxnet.effects.clipping import clip_to_input_sdr
from fxnet.metrics import DEFAULT_METRICS, parse_metric_names
from fxnet.metrics.evaluate import evaluate, pair_files
from fxnet.synth import MUSIC_FAMILIES, generate

SR = 44100


def make_pairs(folder: Path, n: int, seconds: float, seed: int = 0) -> tuple[Path, Path]:
    """Write n clean/clipped pairs under folder/ref and folder/est; returns (est, ref)."""
    ref, est = folder / "ref", folder / "est"
    ref.mkdir(parents=True, exist_ok=True)
    est.mkdir(parents=True, exist_ok=True)
    clean = generate(n, int(seconds * SR), SR, seed=seed, families=MUSIC_FAMILIES)
    clean = 0.9 * clean / np.maximum(np.max(np.abs(clean), axis=1, keepdims=True), 1e-9)
    sdr_db = np.random.default_rng(seed).uniform(1.0, 20.0, n)
    clipped = clip_to_input_sdr(clean, sdr_db)
    for i in range(n):
        sf.write(ref / f"clip{i:03d}.wav", clean[i], SR, subtype="PCM_16")
        sf.write(est / f"clip{i:03d}.wav", clipped[i], SR, subtype="PCM_16")
    return est, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="default: every metric but fad")
    parser.add_argument("--cli", action="store_true", help="also time `python -m fxnet eval` end to end")
    args = parser.parse_args()
    names = parse_metric_names(args.metrics)
    with tempfile.TemporaryDirectory(prefix="fxnet-bench-eval-") as tmp:
        t0 = time.perf_counter()
        est, ref = make_pairs(Path(tmp), args.pairs, args.seconds)
        print(f"made {args.pairs} pairs of {args.seconds:g} s at {SR} Hz in {time.perf_counter() - t0:.1f} s "
              f"({os.cpu_count()} CPUs visible)")
        pairs = pair_files(est, ref).pairs
        evaluate(pairs[:1], names)  # warm-up: imports, numba/FFT plans, caches
        timings: dict[str, float] = {}
        t0, c0 = time.perf_counter(), time.process_time()
        results, _ = evaluate(pairs, names, timings=timings)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        failed = [r for r in results if not r.ok]
        print(f"\n{'step':<12}{'total s':>9}{'ms per pair':>13}")
        for name in ["load", *names]:
            if name in timings:
                print(f"{name:<12}{timings[name]:>9.2f}{1000 * timings[name] / len(pairs):>13.1f}")
        print(f"{'all':<12}{wall:>9.2f}{1000 * wall / len(pairs):>13.1f}   (process CPU time {cpu:.1f} s; "
              f"{len(failed)} failed)")
        if args.cli:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "fxnet", "eval", str(est), str(ref), "--metrics",
                                   ",".join(names), "--quiet"], capture_output=True, text=True)
            print(f"\n`fxnet eval` end to end: {time.perf_counter() - t0:.1f} s (exit code {proc.returncode})")


if __name__ == "__main__":
    main()
