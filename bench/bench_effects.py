"""Milliseconds per 10 s mono 44.1 kHz clip for each reference effect, and synth throughput.

Run: ``python bench/bench_effects.py``. Not a test: timings depend on the machine. The
first call of a numba kernel compiles it (or loads it from numba's cache); that cost is
reported separately and excluded from the per-clip figure.
"""

from __future__ import annotations

import time

import numpy as np

from fxnet.effects import available, get_effect
from fxnet.effects.clipping import clip_to_input_sdr
from fxnet.synth import generate

SR = 44100
REPEATS = 5


def _best_ms(fn, repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    x = generate(1, 10 * SR, SR, seed=0, families=["chord"])[0]
    x = x / np.max(np.abs(x)) * 0.8
    print(f"{'effect':<22}{'first call ms':>14}{'ms per 10 s':>14}{'x real time':>13}")
    for name in available():
        effect = get_effect(name)
        knobs = effect.default_knobs()
        t0 = time.perf_counter()
        effect(x[:64], SR, knobs)
        first = (time.perf_counter() - t0) * 1e3
        ms = _best_ms(lambda: effect(x, SR, knobs))
        print(f"{name:<22}{first:>14.1f}{ms:>14.2f}{10_000 / ms:>13.0f}")
    ms = _best_ms(lambda: clip_to_input_sdr(x, 10.0))
    print(f"{'clip_to_input_sdr':<22}{'':>14}{ms:>14.2f}{10_000 / ms:>13.0f}")
    batch = generate(16, 10 * SR, SR, seed=1)
    knobs = np.random.default_rng(0).uniform(0, 1, (16, 4))
    ms = _best_ms(lambda: get_effect("comp4c")(batch, SR, knobs), 3) / 16
    print(f"{'comp4c, batch of 16':<22}{'':>14}{ms:>14.2f}{10_000 / ms:>13.0f}")
    ms = _best_ms(lambda: generate(64, SR, SR, seed=2), 3)
    print(f"\nsynth.generate(64 clips x 1 s @ 44.1 kHz): {ms:.0f} ms")


if __name__ == "__main__":
    main()
