"""Engine overhead and memory: the core issue's two figures, measured in one run.

1. Overhead: `fxnet apply`'s pipeline (decode -> engine with an identity model ->
   encode) on a 10-minute 44.1 kHz stereo 16-bit WAV, against soundfile reading and
   writing the same file alone (block-wise, as fxnet streams, and whole-file).
2. Memory: peak RSS of the same job on a 10- and a 60-minute file, each in a fresh
   process: the difference shows whether memory depends on length.

    python bench/bench_engine.py [--minutes 10] [--long-minutes 60] [--dir /tmp/fxnet-bench]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
BLOCK = 1 << 16

_CHILD = r"""
import json, resource, sys, time
from fxnet.checkpoint import load_model
from fxnet.process import FileProcessor, ProcessOptions
model, info = load_model(sys.argv[1])
p = FileProcessor(model, options=ProcessOptions(force=True))
t = time.perf_counter()
p.run(sys.argv[2], sys.argv[3])
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_file(path: Path, minutes: float) -> Path:
    """A stereo 16-bit WAV of tones + noise, written block by block (no big array)."""
    if path.exists() and sf.info(path).frames == int(minutes * 60 * SR):
        return path
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * SR)
    with sf.SoundFile(path, "w", SR, 2, subtype="PCM_16") as f:
        for start in range(0, total, SR * 10):
            n = min(SR * 10, total - start)
            t = (start + np.arange(n)) / SR
            tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
            block = np.stack([tone, np.roll(tone, 100)], 1) + 0.05 * rng.standard_normal((n, 2))
            f.write(block.astype(np.float32))
    return path


def soundfile_copy(src: Path, dst: Path, *, blockwise: bool) -> float:
    t = time.perf_counter()
    if blockwise:
        with sf.SoundFile(src) as fin, sf.SoundFile(dst, "w", fin.samplerate, fin.channels, subtype=fin.subtype) as fout:
            for block in fin.blocks(BLOCK, dtype="float32"):
                fout.write(block)
    else:
        data, sr = sf.read(src, dtype="float32")
        sf.write(dst, data, sr, subtype=sf.info(src).subtype)
    return time.perf_counter() - t


def run_child(model: Path, src: Path, dst: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(src), str(dst)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--long-minutes", type=float, default=60.0)
    ap.add_argument("--dir", default="/tmp/fxnet-bench")
    args = ap.parse_args()
    from fxnet.checkpoint import save_model
    from fxnet.models.simple import Gain

    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    model = save_model(Gain(sample_rate=SR), work / "identity.safetensors")
    short = make_file(work / f"stereo_{args.minutes:g}min.wav", args.minutes)

    # Overhead: best of 3 for each, interleaved so that both see the same machine state.
    sf_block, sf_whole, fx = [], [], []
    for _ in range(3):
        sf_block.append(soundfile_copy(short, work / "copy.wav", blockwise=True))
        sf_whole.append(soundfile_copy(short, work / "copy.wav", blockwise=False))
        fx.append(run_child(model, short, work / "out.wav")["wall"])
    b, w, f = min(sf_block), min(sf_whole), min(fx)
    audio_s = args.minutes * 60
    print(f"Engine overhead, identity model, {args.minutes:g} min 44.1 kHz stereo 16-bit WAV (best of 3):")
    print(f"  soundfile read+write, blocks of {BLOCK}: {b:6.2f} s")
    print(f"  soundfile read+write, whole file:      {w:6.2f} s")
    print(f"  fxnet pipeline (decode+engine+encode): {f:6.2f} s  = {audio_s / f:,.0f}x real time")
    print(f"  ratio fxnet / soundfile (blocks):      {f / b:6.2f}   (target <= 1.5)")
    print(f"  ratio fxnet / soundfile (whole file):  {f / w:6.2f}")

    long = make_file(work / f"stereo_{args.long_minutes:g}min.wav", args.long_minutes)
    m_short = run_child(model, short, work / "out.wav")
    m_long = run_child(model, long, work / "out_long.wav")
    print(f"Peak RSS, fresh process each:")
    print(f"  {args.minutes:g} min:  {m_short['maxrss_mb']:7.1f} MB   ({m_short['wall']:.1f} s)")
    print(f"  {args.long_minutes:g} min:  {m_long['maxrss_mb']:7.1f} MB   ({m_long['wall']:.1f} s)")
    print(f"  difference: {m_long['maxrss_mb'] - m_short['maxrss_mb']:+.1f} MB   (target within 50 MB)")
    (work / "out_long.wav").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
