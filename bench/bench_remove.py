"""Benchmark of `fxnet remove`: declipping vs A-SPADE, de-overdrive through the real sox, speed.

    python bench/bench_remove.py            # full: every held-out clip
    python bench/bench_remove.py --quick    # a few clips, for a smoke run

Held-out material (none of it used in training): 4-s excerpts of the rendered real
instruments (examples/guitar.flac, bench/data/*.flac: fluidsynth + a GM soundfont),
speech from espeak-ng when it is installed, and synthetic music clips with a seed the
training never drew.

1. Declipping (paper 001, Fig. 5 protocol): every clip hard-clipped at input SDR
   1, 3, 5, 7, 10, 15, 20 dB (threshold solved exactly); ΔSI-SDR of the `declip` model,
   of `fxnet remove`'s default (``--model auto``) and of fxnet's A-SPADE, side by side.
2. De-overdrive: every clip (peak -6 dBFS) through the real `sox ... overdrive G 20` for
   G = 20, 27.5, 35, 42.5, 50 dB; SI-SDR against the clean clip for the SoX-overdrive
   inversion (`--method sox-overdrive`: settings estimated blind from the clip), the
   default (`--model auto`) and a `deoverdrive` model when one is given (--models).
3. Detection: how often the SoX-overdrive detector fires on real sox overdrive (gains
   15-50 dB, colours 20 and 60) and on everything else (clean audio, hard clipping,
   tanh and cubic soft clipping at three drives); what the misses cost.
4. Speed: `fxnet remove` end to end on a 10-minute 44.1 kHz stereo file (subprocess,
   decode to encode), and the default vs A-SPADE on the same 30-s stereo file, both in
   this process (the ratio).

Prints tables and writes bench/out/remove/results.json (+ plots with --plot).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout, not an installed fxnet (subprocesses: cwd=ROOT)
SR = 44100
CLIP_SECONDS = 4.0
SDRS = (1, 3, 5, 7, 10, 15, 20)
OD_GAINS = (20.0, 27.5, 35.0, 42.5, 50.0)
SPEECH = ("The quick brown fox jumps over the lazy dog while the band plays on.",
          "Please restore the clipped recording of this interview before Friday.")


def held_out_clips(quick: bool) -> list[tuple[str, np.ndarray]]:
    """(name, mono float32 clip of CLIP_SECONDS at SR) for every held-out excerpt."""
    from fxnet.synth import MUSIC_FAMILIES, generate

    n = int(CLIP_SECONDS * SR)
    clips: list[tuple[str, np.ndarray]] = []
    files = [ROOT / "examples" / "guitar.flac", *sorted((ROOT / "bench" / "data").glob("*.flac"))]
    for path in files:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        assert sr == SR, path
        x = x.mean(axis=1)
        for i in range(len(x) // n):
            seg = x[i * n : (i + 1) * n]
            if np.sqrt(np.mean(seg**2)) > 1e-3:
                clips.append((f"{path.stem}{i}", seg))
    if shutil.which("espeak-ng"):
        import soxr

        with tempfile.TemporaryDirectory() as tmp:
            for i, text in enumerate(SPEECH):
                wav = Path(tmp) / f"s{i}.wav"
                subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
                s, sr = sf.read(wav, dtype="float32")
                s = soxr.resample(s, sr, SR).astype(np.float32)[:n]
                clips.append((f"speech{i}", np.pad(s, (0, n - len(s)))))
    synth = generate(6, n, SR, seed=987654, families=[f for f in MUSIC_FAMILIES if f != "speech"])
    clips += [(f"synth{i}", c) for i, c in enumerate(synth)]
    clips = [(name, (c / np.abs(c).max() * 0.5).astype(np.float32)) for name, c in clips]
    if quick:
        clips = clips[:: max(1, len(clips) // 3)][:3]
    return clips


def load(name: str, folder: str | None = None):
    from fxnet.checkpoint import load_model
    from fxnet.registry import resolve_model

    path = Path(folder) / f"{name}.safetensors" if folder else resolve_model(name)
    return load_model(path)[0].eval()


def run_model(model, x: np.ndarray) -> np.ndarray:
    """``model`` over x through the engine; ``None`` (nothing to remove) returns x."""
    from fxnet.engine import process_tensor

    if model is None:
        return x
    with torch.inference_mode():
        return process_tensor(model, torch.from_numpy(x)[None], knobs=[]).numpy()[0]


def remover_for(models: dict, x: np.ndarray, *, method: str = "model", fit=None):
    """The model `fxnet remove --method METHOD` (``--model auto``) runs on this whole signal,
    chosen by the CLI's own :func:`fxnet.restore.pipeline.route` (``None``: it passes
    unchanged), and the SoX-overdrive fit it made (pass it back to reuse it)."""
    from fxnet.restore.detect import detect_clipping
    from fxnet.restore.pipeline import INVERSE, NOTHING, builtin_remover, route

    scan = detect_clipping(x)
    name, fit = route(x[None], SR, scan, method=method, fit=fit)
    if name == NOTHING:
        return None, fit
    if name == INVERSE:
        return builtin_remover(name, SR, scan, fit, frames=x.shape[-1]), fit
    return models[name], fit


def median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def aspade_selection(clips, spec: str | None) -> list[str] | None:
    """The clip names A-SPADE runs on: all (None), N spread evenly over the list, or named."""
    if not spec:
        return None
    names = [n for n, _ in clips]
    if spec.isdigit():
        n = max(1, min(int(spec), len(names)))
        return [names[int(i)] for i in np.linspace(0, len(names) - 1, n).round()]
    chosen = [v.strip() for v in spec.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise SystemExit(f"--aspade-clips: no held-out clip named {', '.join(unknown)}")
    return chosen


def declip_sweep(clips, models, *, aspade_on: bool, aspade_clips: list[str] | None = None, sdrs=SDRS,
                 master_dbfs: float | None = None) -> dict:
    from fxnet.effects.clipping import clip_to_input_sdr
    from fxnet.metrics.basic import si_sdr
    from fxnet.restore.aspade import aspade

    rows: dict[str, dict[int, list[float]]] = {"declip": {}, "default": {}, "aspade": {}}
    paired: dict[str, dict[str, list[float]]] = {"declip": {}, "default": {}}  # on A-SPADE's clips
    times = {"declip": 0.0, "aspade": 0.0}
    for sdr in sdrs:
        for name, x in clips:
            y = clip_to_input_sdr(x, float(sdr))
            if master_dbfs is not None:  # clipped, then normalised: a loud master's plateau sits at the top
                y = (y * (10 ** (master_dbfs / 20) / np.abs(y).max())).astype(np.float32)
            base = si_sdr(y, x)
            t = time.perf_counter()
            out = run_model(models["declip"], y)
            times["declip"] += time.perf_counter() - t
            rows["declip"].setdefault(sdr, []).append(si_sdr(out, x) - base)
            default, _ = remover_for(models, y)
            out_d = out if default is models["declip"] else run_model(default, y)
            if default is not models["declip"]:
                routed = getattr(default, "arch", "another model")
                print(f"  note: the default routed {name} at {sdr} dB to {routed}", flush=True)
            rows["default"].setdefault(sdr, []).append(si_sdr(out_d, x) - base)
            if aspade_on and (aspade_clips is None or name in aspade_clips):
                for m in paired:
                    paired[m].setdefault(str(sdr), []).append(rows[m][sdr][-1])
                t = time.perf_counter()
                out_a = aspade(y)
                times["aspade"] += time.perf_counter() - t
                rows["aspade"].setdefault(sdr, []).append(si_sdr(out_a, x) - base)
                print(f"  {name} at {sdr} dB: declip {rows['declip'][sdr][-1]:+.2f}, A-SPADE "
                      f"{rows['aspade'][sdr][-1]:+.2f} ({time.perf_counter() - t:.0f} s)", flush=True)
        line = "  ".join(f"{m} {median(v[sdr]):+6.2f}" for m, v in rows.items() if sdr in v)
        print(f"input SDR {sdr:>2} dB  median ΔSI-SDR  {line}", flush=True)
    if aspade_on and aspade_clips:
        print(f"on the A-SPADE clips ({', '.join(aspade_clips)}):")
        for sdr in sdrs:
            d, a = median(paired["declip"][str(sdr)]), median(rows["aspade"][sdr])
            print(f"input SDR {sdr:>2} dB  median ΔSI-SDR  declip {d:+6.2f}  aspade {a:+6.2f}  "
                  f"declip - aspade {d - a:+6.2f}", flush=True)
    n_aspade = len(clips) if aspade_clips is None else len(aspade_clips)
    return {"delta_si_sdr": {m: {str(k): v for k, v in d.items()} for m, d in rows.items()},
            "aspade_clips": aspade_clips or [n for n, _ in clips], "paired_with_aspade": paired if aspade_on else {},
            "seconds": times,
            "audio_seconds": {"networks": len(clips) * len(sdrs) * CLIP_SECONDS,
                              "aspade": (n_aspade if aspade_on else 0) * len(sdrs) * CLIP_SECONDS}}


def sox_overdrive_file(x: np.ndarray, gain: float, tmp: Path, colour: float = 20.0) -> np.ndarray:
    src, dst = tmp / "dry.wav", tmp / "wet.wav"
    sf.write(src, x, SR, subtype="FLOAT")
    subprocess.run(["sox", "-V1", str(src), "-e", "floating-point", "-b", "32", str(dst), "overdrive", f"{gain:g}",
                    f"{colour:g}"], check=True, capture_output=True)
    y, _ = sf.read(dst, dtype="float32")
    return y


def deoverdrive(clips, models) -> dict:
    from fxnet.metrics.basic import si_sdr

    methods = ["input", "sox-overdrive", "default"] + (["deoverdrive"] if models.get("deoverdrive") else [])
    rows: dict[str, dict[float, list[float]]] = {m: {} for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        for gain in OD_GAINS:
            for name, x in clips:
                x = (x / np.abs(x).max() * 10 ** (-6 / 20)).astype(np.float32)
                y = sox_overdrive_file(x, gain, Path(tmp))
                rows["input"].setdefault(gain, []).append(si_sdr(y, x))
                default, fit = remover_for(models, y)  # the one fit serves both
                inverse, _ = remover_for(models, y, method="sox-overdrive", fit=fit)
                rows["sox-overdrive"].setdefault(gain, []).append(si_sdr(run_model(inverse, y), x))
                rows["default"].setdefault(gain, []).append(si_sdr(run_model(default, y), x))
                if "deoverdrive" in rows:
                    rows["deoverdrive"].setdefault(gain, []).append(si_sdr(run_model(models["deoverdrive"], y), x))
            line = "  ".join(f"{m} {median(v[gain]):6.2f}" for m, v in rows.items())
            print(f"sox overdrive {gain:>4} dB  median SI-SDR  {line}", flush=True)
    every = {m: [s for v in d.values() for s in v] for m, d in rows.items()}
    print("all gains: " + "  ".join(f"{m} {median(v):.2f} dB" for m, v in every.items()))
    return {"si_sdr": {m: {str(k): v for k, v in d.items()} for m, d in rows.items()},
            "median_all": {m: median(v) for m, v in every.items()}}


#: Detection check: SoX overdrive (gain dB, colour) that must be found ...
DETECT_POSITIVES = ((15.0, 20.0), (20.0, 20.0), (20.0, 60.0), (35.0, 20.0), (50.0, 20.0))
#: ... and other material that must not be: (name, function of the clip at -6 dBFS).
SATURATION_AMOUNTS = (0.25, 0.5, 1.0)


def detection(clips) -> dict:
    """How often the SoX-overdrive detector fires on SoX overdrive (the real sox) and on
    everything else (clean at two levels, hard clip, tanh and cubic soft clip), and the
    SI-SDR the inversion reaches on the positives (the price of a miss)."""
    from fxnet.effects.clipping import clip_to_input_sdr
    from fxnet.effects.distortion import distortion
    from fxnet.metrics.basic import si_sdr
    from fxnet.restore.overdrive import fit, invert

    found: dict[str, list[bool]] = {}
    inverted: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    fits = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in clips:
            x = (x / np.abs(x).max() * 10 ** (-6 / 20)).astype(np.float32)
            cases = [(f"sox overdrive {g:g} {c:g}", True, sox_overdrive_file(x, g, Path(tmp), c))
                     for g, c in DETECT_POSITIVES]
            cases += [("clean -6 dBFS", False, x), ("clean -0.1 dBFS", False, x * np.float32(10 ** (5.9 / 20))),
                      ("hard clip 15 dB SDR", False, clip_to_input_sdr(x, 15.0))]
            cases += [(f"{label} {a:g}", False, distortion(x, SR, [kind / 3, a])) for a in SATURATION_AMOUNTS
                      for label, kind in (("tanh", 2), ("soft clip", 1))]  # threshold 24·a dB below the peak
            for case, positive, y in cases:
                f = fit(y[None], SR)
                fits += 1
                found.setdefault(case, []).append(f.detected)
                if positive:
                    routed = invert(y, f.gain_db, f.colour) if f.detected else y
                    inverted.setdefault(case, []).append(si_sdr(routed, x))
    for case, hits in found.items():
        extra = f"  median SI-SDR as routed {median(inverted[case]):6.2f} dB" if case in inverted else ""
        print(f"{case:<24} detected {sum(hits):>2}/{len(hits)}{extra}", flush=True)
    return {"detected": {c: int(sum(h)) for c, h in found.items()}, "clips": len(clips),
            "si_sdr_as_routed": inverted, "seconds_per_fit": (time.perf_counter() - t0) / max(fits, 1)}


def run_fxnet(args: list[str]) -> tuple[str, float, float]:
    """Run ``python -m fxnet ARGS`` from the checkout; returns (stdout, wall seconds, peak
    RSS in MB of that process alone, from wait4)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fxnet", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"fxnet {' '.join(args)} exited with {proc.returncode}")
    return stdout, wall, usage.ru_maxrss / 1024.0


def speed(quick: bool, ratio_seconds: float = 10.0) -> dict:
    from fxnet.effects.clipping import clip_to_input_sdr
    from fxnet.process import ProcessOptions
    from fxnet.restore.pipeline import Remover
    from fxnet.synth import generate

    minutes = 1.0 if quick else 10.0
    n = int(minutes * 60 * SR)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = generate(4, 30 * SR, SR, seed=4242, families=["chord", "drums", "bass", "string"])
        music = np.stack([base[:2].reshape(-1), base[2:].reshape(-1)])  # one minute of stereo
        stereo = np.stack([clip_to_input_sdr(row, 8.0) for row in music])
        long = np.tile(stereo, (1, int(np.ceil(minutes))))[:, :n]
        src = tmp / "long.wav"
        sf.write(src, (long / np.abs(long).max() * 0.95).T, SR, subtype="PCM_16")
        _, wall, peak = run_fxnet(["remove", str(src), "-o", str(tmp / "long.clean.wav"), "-q"])
        out["long"] = {"audio_seconds": minutes * 60, "channels": 2, "wall_seconds": wall,
                       "x_realtime": minutes * 60 / wall, "peak_rss_mb": peak}
        print(f"fxnet remove, {minutes:g}-min 44.1 kHz stereo 16-bit, end to end: {wall:.1f} s "
              f"= {minutes * 60 / wall:.0f}x real time, peak RSS {peak:.0f} MB", flush=True)
        out["long_overdrive"] = overdrive_speed(np.tile(music, (1, int(np.ceil(minutes))))[:, :n], tmp, minutes)
        short = tmp / "short.wav"
        part = stereo[:, int(10 * SR) : int((10 + ratio_seconds) * SR)]
        sf.write(short, (part / np.abs(part).max() * 0.95).T, SR, subtype="PCM_16")
        opts = ProcessOptions(clip_mode="normalize", force=True)
        t = time.perf_counter()
        Remover(opts).run(str(short), str(tmp / "short.model.wav"))
        t_model = time.perf_counter() - t
        t = time.perf_counter()
        Remover(opts, method="aspade").run(str(short), str(tmp / "short.aspade.wav"))
        t_aspade = time.perf_counter() - t
        out["ratio"] = {"audio_seconds": ratio_seconds, "channels": 2, "model_seconds": t_model,
                        "aspade_seconds": t_aspade, "speedup": t_aspade / t_model}
        print(f"same {ratio_seconds:g}-s stereo file: default remover {t_model:.2f} s "
              f"({ratio_seconds / t_model:.0f}x RT), A-SPADE {t_aspade:.1f} s ({ratio_seconds / t_aspade:.3f}x RT): "
              f"the remover is {t_aspade / t_model:.0f}x faster", flush=True)
    return out


def overdrive_speed(music: np.ndarray, tmp: Path, minutes: float) -> dict:
    """``fxnet remove`` end to end on ``music`` (the speed file's music before clipping)
    at -6 dBFS through the real ``sox overdrive 30 20``: scan, SoX-overdrive fit, exact
    inversion (one run)."""
    from fxnet.metrics.basic import si_sdr

    dry = (music / np.abs(music).max() * 10 ** (-6 / 20)).astype(np.float32)
    src, wet = tmp / "od_dry.wav", tmp / "od_wet.wav"
    sf.write(src, dry.T, SR, subtype="FLOAT")
    subprocess.run(["sox", "-V1", str(src), "-b", "16", str(wet), "overdrive", "30", "20"], check=True,
                   capture_output=True)
    clean = tmp / "od_clean.wav"
    stdout, wall, peak = run_fxnet(["remove", str(wet), "-o", str(clean), "--json", "-q"])
    used = json.loads(stdout)["files"][0]["extra"]["model"]
    y, _ = sf.read(wet, dtype="float32")
    x, _ = sf.read(clean, dtype="float32")
    before = float(np.median([si_sdr(y[:, c], dry[c]) for c in range(2)]))
    after = float(np.median([si_sdr(x[:, c], dry[c]) for c in range(2)]))
    print(f"fxnet remove, {minutes:g}-min 44.1 kHz stereo 16-bit through sox overdrive 30 20, end to end: "
          f"{wall:.1f} s = {minutes * 60 / wall:.0f}x real time, peak RSS {peak:.0f} MB; {used}; "
          f"SI-SDR {before:.1f} -> {after:.1f} dB", flush=True)
    return {"audio_seconds": minutes * 60, "channels": 2, "wall_seconds": wall, "x_realtime": minutes * 60 / wall,
            "peak_rss_mb": peak, "model": used, "si_sdr_in": before, "si_sdr_out": after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="three clips, 1-min speed file")
    ap.add_argument("--no-aspade", action="store_true", help="skip A-SPADE in the sweep (slow)")
    ap.add_argument("--aspade-clips", help="run A-SPADE on N clips spread over the list, or on the named clips "
                    "(comma list): it is slow")
    ap.add_argument("--sdrs", default=",".join(map(str, SDRS)), help="input SDRs of the declipping sweep")
    ap.add_argument("--master-dbfs", type=float, help="declip sweep: normalise each clipped clip to this peak "
                    "(e.g. -0.1, a loud master) before removal")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: declip,overdrive,detection,speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ratio-seconds", type=float, default=10.0, help="length of the remover-vs-A-SPADE file")
    ap.add_argument("--plot", action="store_true", help="write the sweep plots next to results.json")
    ap.add_argument("--models", help="folder of declip/deoverdrive/undistort.safetensors (default: the registry)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "remove"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    clips = held_out_clips(args.quick)
    print(f"{len(clips)} held-out clips of {CLIP_SECONDS:g} s: {', '.join(n for n, _ in clips)}", flush=True)
    from fxnet.errors import FxnetError

    models = {"declip": load("declip", args.models)}
    for name in ("deoverdrive", "undistort"):  # not bundled yet: only from --models
        try:
            models[name] = load(name, args.models)
        except (FxnetError, FileNotFoundError):
            models[name] = models["declip"] if name == "undistort" else None
    results: dict = {"clips": [n for n, _ in clips], "threads": args.threads}
    if "declip" not in skip:
        results["declip"] = declip_sweep(clips, models, aspade_on=not args.no_aspade,
                                         aspade_clips=aspade_selection(clips, args.aspade_clips),
                                         sdrs=[int(v) for v in args.sdrs.split(",")], master_dbfs=args.master_dbfs)
        results["declip"]["master_dbfs"] = args.master_dbfs
    if "overdrive" not in skip:
        results["overdrive"] = deoverdrive(clips, models)
    if "detection" not in skip:
        results["detection"] = detection(clips)
    if "speed" not in skip:
        results["speed"] = speed(args.quick, args.ratio_seconds)
    (outdir / "results.json").write_text(json.dumps(results, indent=1))
    if args.plot and "declip" in results:
        from fxnet.metrics.plots import sweep_plot

        d = results["declip"]["delta_si_sdr"]
        sweep_plot({m: {int(k): v for k, v in rows.items()} for m, rows in d.items() if rows},
                   outdir / "declip_sweep.png", xlabel="input SDR (dB)", ylabel="ΔSI-SDR (dB)")
    print(f"wrote {outdir / 'results.json'}")


if __name__ == "__main__":
    main()
