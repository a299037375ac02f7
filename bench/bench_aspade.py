"""A-SPADE baseline: ΔSI-SDR and real-time factor per input SDR on music-like audio.

Run: ``python bench/bench_aspade.py`` (defaults: one 5 s clip per music family of
:mod:`fxnet.synth` plus their mix, 44.1 kHz, input SDR {1, 3, 5, 7, 10, 15, 20} dB — the
SignalTrain-HC test grid of Imort et al. 2022). Each clip is hard-clipped to the target
input SDR with :func:`fxnet.effects.clipping.clip_to_input_sdr` and declipped with
:func:`fxnet.restore.aspade.aspade` at the survey's defaults (w = 8192, hop 2048,
redundancy 2, s = 1, r = 2, ε = 0.1), clipping levels detected from the input.

SI-SDR has no zero-mean step (Le Roux et al. 2019); ΔSI-SDR = SI-SDR(out) - SI-SDR(in).
The real-time factor (×RT) is processing seconds per second of audio; the literature
reports 4.2-27.3 for A-SPADE (Záviška et al. 2021). Timings depend on the machine and
its load (printed): A-SPADE's per-iteration tensors are small, so each run uses
``--threads`` torch threads (default 1: on a loaded machine a second thread's barrier
waits slow it down many times) and ``--jobs`` runs go in parallel.

``--material gm`` renders random MIDI pieces with fluidsynth and the General MIDI
SoundFont (sampled real instruments; Debian ``fluidsynth fluid-soundfont-gm``) instead,
for a comparison with published results on real recordings. ``--json PATH`` saves every
run. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

SDRS = (1.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0)
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """SI-SDR in dB without zero-mean (Le Roux et al. 2019)."""
    ref, est = np.asarray(ref, np.float64), np.asarray(est, np.float64)
    alpha = np.dot(est, ref) / np.dot(ref, ref)
    return float(10.0 * np.log10(np.sum((alpha * ref) ** 2) / np.sum((alpha * ref - est) ** 2)))


# ----------------------------------------------------------------------------- material
def synth_clip(name: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """One clip of a music family of fxnet.synth, or ``mix``: all of them, each at peak 1."""
    from fxnet.synth import MUSIC_FAMILIES, generate

    n = int(seconds * sr)
    names = MUSIC_FAMILIES if name == "mix" else (name,)
    parts = [generate(1, n, sr, seed=seed + i, families=[f])[0].astype(np.float64) for i, f in enumerate(names)]
    x = sum(p / max(np.abs(p).max(), 1e-12) for p in parts)
    return x / np.abs(x).max()


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _midi_piece(seed: int, seconds: float) -> bytes:
    """A format-0 MIDI file: chords, a melody and a bass line on two random GM
    programs (pianos, guitars, strings, winds) plus a fingered bass."""
    rng = np.random.default_rng(seed)
    tpq, bpm = 480, rng.uniform(80.0, 140.0)

    def tick(s: float) -> int:
        return int(s * bpm / 60.0 * tpq)

    programs = rng.choice([0, 4, 24, 25, 26, 40, 48, 56, 68, 73], size=2, replace=False)
    events = [(0, bytes([0xC0, int(programs[0])])), (0, bytes([0xC1, int(programs[1])])), (0, bytes([0xC2, 33]))]
    root, t = int(rng.integers(48, 60)), 0.0
    while t < seconds + 1.0:
        d = float(rng.choice([0.25, 0.5, 1.0])) * 120.0 / bpm
        chord = root + np.array([0, 4, 7] if rng.random() < 0.5 else [0, 3, 7]) + int(rng.choice([0, 5, 7, -3]))
        for note in chord:
            events += [(tick(t), bytes([0x90, int(note), int(rng.integers(60, 110))])), (tick(t + d), bytes([0x80, int(note), 0]))]
        events += [(tick(t), bytes([0x92, int(chord[0]) - 12, 100])), (tick(t + d), bytes([0x82, int(chord[0]) - 12, 0]))]
        lead = int(chord[rng.integers(3)]) + 12
        events += [(tick(t), bytes([0x91, lead, int(rng.integers(70, 120))])), (tick(t + 0.9 * d), bytes([0x81, lead, 0]))]
        t += d
    track, last = b"", 0
    for when, msg in sorted(events, key=lambda e: e[0]):
        track += _vlq(when - last) + msg
        last = when
    track += _vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(track)) + track


def gm_clip(name: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """A random piece rendered by fluidsynth (mono mix, from 0.5 s in)."""
    import soundfile as sf

    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise SystemExit("--material gm needs fluidsynth and fluid-soundfont-gm (apt-get install ...)")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        mid.write_bytes(_midi_piece(seed + int(name.removeprefix("piece")), seconds))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-F", str(wav), "-r", str(sr), str(SOUNDFONT), str(mid)],
                       check=True, capture_output=True)
        audio, _ = sf.read(wav, always_2d=True)
    start = int(0.5 * sr)
    return audio.mean(axis=1)[start : start + int(seconds * sr)]


# --------------------------------------------------------------------------------- runs
def run_one(material: str, name: str, sr: int, sdr: float, seconds: float, seed: int, threads: int) -> dict:
    import torch

    from fxnet.effects.clipping import clip_to_input_sdr
    from fxnet.restore.aspade import aspade
    from fxnet.restore.detect import detect_clipping

    torch.set_num_threads(threads)
    x = (gm_clip if material == "gm" else synth_clip)(name, seconds, sr, seed)
    y = clip_to_input_sdr(x, sdr)
    report = detect_clipping(y)
    t0 = time.perf_counter()
    out = aspade(y)
    elapsed = time.perf_counter() - t0
    before, after = si_sdr(x, y), si_sdr(x, out)
    return {"material": material, "clip": name, "rate": sr, "sdr_target": sdr, "si_sdr_in": before,
            "si_sdr_out": after, "delta": after - before, "seconds": seconds, "time_s": elapsed,
            "xrt": elapsed / seconds, "clipped_fraction": report.clipped_fraction}


def _table(runs: list[dict], key: str, fmt: str, title: str) -> None:
    clips = list(dict.fromkeys(r["clip"] for r in runs))
    sdrs = sorted({r["sdr_target"] for r in runs})
    print(f"\n{title}")
    print(f"{'SDR in':>7}" + "".join(f"{c:>9}" for c in clips) + f"{'mean':>9}")
    for s in sdrs:
        row = {r["clip"]: r[key] for r in runs if r["sdr_target"] == s}
        cells = "".join(f"{row[c]:{fmt}}" if c in row else f"{'':>9}" for c in clips)
        print(f"{s:>7g}{cells}{np.mean(list(row.values())):{fmt}}")


def main() -> None:
    from fxnet.synth import MUSIC_FAMILIES

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--material", choices=("synth", "gm"), default="synth")
    p.add_argument("--clips", default=None, help="comma list (synth: families and 'mix'; gm: piece0,piece1,...)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rates", default="44100", help="comma list of sample rates, e.g. 44100,16000")
    p.add_argument("--sdrs", default=",".join(f"{s:g}" for s in SDRS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    default = ",".join((*MUSIC_FAMILIES, "mix")) if a.material == "synth" else "piece0,piece1"
    clips = (a.clips or default).split(",")
    rates = [int(r) for r in a.rates.split(",")]
    sdrs = [float(s) for s in a.sdrs.split(",")]

    print(f"A-SPADE (w=8192, hop 2048, red. 2, s=1, r=2, eps=0.1); {a.material}, {a.seconds:g} s clips, "
          f"{a.threads} thread(s) x {a.jobs} job(s); load average {os.getloadavg()[0]:.1f}")
    tasks = [(a.material, c, sr, s, a.seconds, a.seed, a.threads) for sr in rates for s in sdrs for c in clips]
    runs: list[dict] = []
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        futures = [pool.submit(run_one, *t) for t in tasks]
        for f in as_completed(futures):
            r = f.result()
            runs.append(r)
            print(f"{r['rate']:>6} Hz {r['clip']:>8} SDR {r['sdr_target']:>4g}: SI-SDR {r['si_sdr_in']:6.2f} -> "
                  f"{r['si_sdr_out']:6.2f} dB ({r['delta']:+6.2f}), {100 * r['clipped_fraction']:5.2f} % clipped, "
                  f"{r['time_s']:7.1f} s = {r['xrt']:6.1f} x RT", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    for sr in rates:
        sub = [r for r in runs if r["rate"] == sr]
        _table(sub, "delta", "+9.2f", f"ΔSI-SDR (dB), {sr} Hz")
        _table(sub, "xrt", "9.1f", f"real-time factor (s per s of audio), {sr} Hz")
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
