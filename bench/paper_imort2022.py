"""Reproduce paper 001's comparison (Imort et al. 2022, "Distortion audio effects: learning
how to recover the clean signal") with fxnet's engine, data and metrics, in one command:

    python bench/paper_imort2022.py --quick               # 4 minutes on 2 CPU cores
    python bench/paper_imort2022.py                       # the published run (docs/results.md), 41 min

What it does, following the paper's protocol at 16 kHz:
1. Trains Demucs, Wave-U-Net, Open-Unmix and CRAFx (each ~1 M parameters) with
   ``fxnet profile --synth EFFECT --direction remove --loss sdr`` (the paper's SDR loss,
   Adam, 2-s segments) on fxnet's synthetic music, each for ``--seconds`` of training, two
   trainings at a time on one thread each. Models already in OUT/models are reused
   (``--retrain`` trains them again).
2. Builds two held-out test sets from clips never used in training (GM-rendered guitar,
   bass/drums, piano and strings, espeak-ng speech, synthetic music of an unseen seed):
   - ``ceg-od`` (de-overdrive, paper Fig. 2): fxnet's SoX-style overdrive with the dry
     signal mixed in, gains 20/27.5/35/42.5/50 dB;
   - ``st-hc`` (declipping, SignalTrain-HC, paper Figs. 4-5): hard clipping to input SDR
     1/3/5/7/10/15/20 dB (threshold by bisection).
3. Scores every method with SI-SDR, PEAQ (ODG), R_nonlin per clip and FAD per set: the
   unprocessed input, each trained model, the ideal ratio mask (IRM, the oracle upper bound
   of mask-based models), A-SPADE (declipping only) and, for reference, the bundled
   ``declip`` model (run at its own 44.1 kHz rate).
4. Writes OUT/results.json, OUT/results.md (median tables, the ΔSI-SDR-vs-input-SDR table,
   and the Kendall rank correlation between metrics, the paper's Table I) and box and
   sweep plots (OUT/*.png).

The paper trained every model for 1000 epochs of 8.4 h (CEG) or 24 h (SignalTrain) of
audio on a GPU; a CPU run of minutes per model is a small fraction of that, so the
absolute numbers are far below the paper's, and the ranking is what to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soxr
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # this checkout, not an installed fxnet

SR = 16000
SDRS = (1, 3, 5, 7, 10, 15, 20)
OD_GAINS = (20.0, 27.5, 35.0, 42.5, 50.0)
METRICS = ("si_sdr", "peaq", "rnonlin")
#: task -> (training effect, the conditions of the test set, what a condition is)
TASKS = {
    "ceg-od": ("overdrive_ceg", OD_GAINS, "overdrive gain (dB)"),
    "st-hc": ("clip_sdr", SDRS, "input SDR (dB)"),
}
#: the paper's models (registry name -> label) and their ~1 M-parameter configurations
ARCHS = {
    "demucs": ("Demucs", ["channels=8", "depth=5"]),
    "waveunet": ("Wave-U-Net", []),
    "openunmix": ("UMX", []),
    "crafx": ("CRAFx", []),
}
#: the architectures whose fxnet default is residual (y = x + correction); ``--direct``
#: trains them as the paper did, outputting the estimate itself
RESIDUAL = ("demucs", "waveunet", "crafx")
#: CRAFx was left out of SignalTrain-HC in the paper ("considerably worse performance")
TASK_ARCHS = {"ceg-od": ["demucs", "waveunet", "openunmix", "crafx"], "st-hc": ["demucs", "waveunet", "openunmix"]}


def log(text: str) -> None:
    print(text, flush=True)


# --- training -------------------------------------------------------------------------------------


def train_command(task: str, arch: str, out: Path, args) -> list[str]:
    effect = TASKS[task][0]
    cmd = [sys.executable, "-m", "fxnet", "profile", "--synth", effect, "--direction", "remove",
           "--families", "music", "--sample-rate", str(SR), "--arch", arch]
    for item in ARCHS[arch][1] + (["residual=false"] if args.direct and arch in RESIDUAL else []):
        cmd += ["--arch-config", item]
    cmd += ["--segment", str(args.segment), "--batch-size", str(args.batch_size), "--loss", "sdr",
            "--lr", str(args.lr), "--schedule", "plateau", "--seconds", str(args.seconds),
            "--checkpoint-every", "200", "--val-clips", "2", "--seed", "0", "--threads", "1",
            "-o", str(out), "--force", "--quiet"]
    return cmd


def train_all(models_dir: Path, args) -> dict[str, dict]:
    """Train every (task, arch) that has no model yet, two at a time; returns their summaries."""
    from fxnet.checkpoint import load_model, read_header

    models_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for task, archs in TASK_ARCHS.items():
        for arch in archs:
            out = models_dir / f"{task}_{arch}.safetensors"
            if args.retrain or not out.exists():
                jobs.append((task, arch, out))

    def run(job):
        task, arch, out = job
        cmd = train_command(task, arch, out, args)
        logfile = out.with_suffix(".log")
        t = time.perf_counter()
        with open(logfile, "w") as fh:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"training {task}/{arch} failed (exit {done.returncode}); see {logfile}")
        log(f"  trained {task}/{arch} in {time.perf_counter() - t:.0f} s")

    if jobs:
        log(f"training {len(jobs)} models, {args.seconds:g} s each, {args.parallel} at a time: "
            + " ".join(train_command(*jobs[0], args)[2:]))
        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(run, jobs))
    summaries = {}
    for task, archs in TASK_ARCHS.items():
        for arch in archs:
            path = models_dir / f"{task}_{arch}.safetensors"
            tr = read_header(path).meta.get("training") or {}
            model = load_model(path)[0]
            summaries[f"{task}/{arch}"] = {
                "params": sum(p.numel() for p in model.parameters()), "steps": tr.get("steps"),
                "wall_seconds": tr.get("wall_seconds"), "loss": tr.get("loss"), "best_step": tr.get("best_step"),
                "hardware": tr.get("hardware")}
    return summaries


# --- test sets ------------------------------------------------------------------------------------


def test_clips(quick: bool) -> list[tuple[str, np.ndarray]]:
    """Held-out clips (bench_remove's set: none of it was used in training), at 16 kHz."""
    from bench_remove import SR as CLIP_SR
    from bench_remove import held_out_clips

    clips = held_out_clips(quick)
    out = []
    for name, x in clips:
        y = soxr.resample(x.astype(np.float64), CLIP_SR, SR).astype(np.float32)
        out.append((name, (y / np.abs(y).max() * 0.5).astype(np.float32)))
    return out


def corrupt(task: str, x: np.ndarray, condition: float) -> np.ndarray:
    if task == "st-hc":
        from fxnet.effects.clipping import clip_to_input_sdr

        return clip_to_input_sdr(x, float(condition)).astype(np.float32)
    from fxnet.effects import get_effect

    effect = get_effect(TASKS[task][0])
    spec = effect.knobs[0]
    knob = (condition - spec.minimum) / (spec.maximum - spec.minimum)
    return np.asarray(effect(x, SR, [knob]), dtype=np.float32)


# --- methods --------------------------------------------------------------------------------------


def run_model(model, x: np.ndarray) -> np.ndarray:
    from fxnet.engine import process_tensor

    with torch.inference_mode():
        return process_tensor(model, torch.from_numpy(np.ascontiguousarray(x))[None], knobs=[]).numpy()[0]


def run_at_rate(model, x: np.ndarray) -> np.ndarray:
    """A model made for another rate, as `fxnet remove` runs it: at the clips' rate when it
    declares ``any_rate`` (the clip-mask declipper), else resampled to its rate and back."""
    rate = model.sample_rate
    if model.any_rate or rate == SR:
        return run_model(model, x)
    y = run_model(model, soxr.resample(x.astype(np.float64), SR, rate).astype(np.float32))
    return soxr.resample(y.astype(np.float64), rate, SR)[: len(x)].astype(np.float32)


def methods_for(task: str, models_dir: Path, args) -> dict:
    """label -> callable(degraded, clean) -> estimate, in table order."""
    from fxnet.checkpoint import load_model
    from fxnet.models.openunmix import ideal_ratio_mask
    from fxnet.restore.aspade import aspade

    methods = {"input": lambda y, x: y}
    for arch in TASK_ARCHS[task]:
        model = load_model(models_dir / f"{task}_{arch}.safetensors")[0].eval()
        methods[ARCHS[arch][0]] = lambda y, x, m=model: run_model(m, y)
    methods["IRM (oracle)"] = lambda y, x: np.asarray(ideal_ratio_mask(x, y), dtype=np.float32)
    if task == "st-hc":
        if not args.no_aspade:
            methods["A-SPADE"] = lambda y, x: aspade(y, window=args.aspade_window)
        if not args.no_bundled:
            from fxnet.registry import resolve_model

            declip = load_model(resolve_model("declip"))[0].eval()
            methods["declip (bundled)"] = lambda y, x: run_at_rate(declip, y)
    return methods


def score_task(task: str, clips, models_dir: Path, args) -> dict:
    from fxnet.metrics import compute
    from fxnet.metrics.fad import LogMelStatsEmbedding, embed, fad_from_embeddings

    conditions = TASKS[task][1] if not args.quick else TASKS[task][1][:: 2]
    methods = methods_for(task, models_dir, args)
    rows = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    embedding = LogMelStatsEmbedding()
    emb_est = {m: [] for m in methods}
    clip_emb = [embed(x, SR, embedding) for _, x in clips]  # each clean clip once
    emb_ref = []
    for cond in conditions:
        for (name, x), ref_emb in zip(clips, clip_emb):
            y = corrupt(task, x, cond)
            emb_ref.append(ref_emb)  # the reference set pairs one-to-one with every method's outputs
            si_sdr_in = float(compute(["si_sdr"], y, x, SR)["si_sdr"])
            for label, method in methods.items():
                t = time.perf_counter()
                est = method(y, x)
                seconds[label] += time.perf_counter() - t
                est = np.nan_to_num(np.asarray(est, dtype=np.float32)[: len(x)])
                scores = compute(METRICS, est, x, SR)
                scores["si_sdr_in"] = si_sdr_in
                rows[label].append({"clip": name, "condition": cond, **scores})
                emb_est[label].append(embed(est, SR, embedding))
        medians = "  ".join(f"{m} {np.median([r['si_sdr'] for r in rows[m] if r['condition'] == cond]):6.2f}"
                            for m in methods)
        log(f"  {task} {TASKS[task][2]} {cond:g}: median SI-SDR  {medians}")
    fad = {}
    for label in methods:
        try:
            fad[label] = fad_from_embeddings(emb_est[label], emb_ref)
        except Exception as e:  # noqa: BLE001 - too few clips in --quick: say so, keep the rest
            log(f"  fad {task}/{label}: {e}")
            fad[label] = math.nan
    audio = len(conditions) * len(clips) * len(clips[0][1]) / SR
    return {"conditions": list(conditions), "condition_name": TASKS[task][2], "rows": rows, "fad": fad,
            "speed_x_realtime": {m: audio / s if s > 0 else None for m, s in seconds.items()}}


# --- report ---------------------------------------------------------------------------------------


def kendall(results: dict) -> dict:
    """Kendall's tau between every pair of per-clip metrics, over all tasks and methods
    except the unprocessed input (the paper's Table I)."""
    from scipy.stats import kendalltau

    table = {m: [] for m in METRICS}
    for task in results.values():
        for label, rows in task["rows"].items():
            if label == "input":
                continue
            for r in rows:
                if all(np.isfinite(r[m]) for m in METRICS):
                    for m in METRICS:
                        table[m].append(r[m])
    return {a: {b: float(kendalltau(table[a], table[b])[0]) for b in METRICS} for a in METRICS} | {
        "n": len(table[METRICS[0]])}


def med(values) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def markdown(results: dict, tau: dict, summaries: dict, args, wall: float) -> str:
    lines = [f"# Paper 001 reproduction ({'quick' if args.quick else f'{args.seconds:g} s per model'})", ""]
    lines.append(f"Training: {args.seconds:g} s per model on one CPU thread, batch {args.batch_size}, "
                 f"segment {args.segment} samples at {SR} Hz, SDR loss; total wall time {wall / 60:.1f} min.")
    lines.append("")
    lines.append("| model | task | parameters | steps |")
    lines.append("|---|---|---:|---:|")
    for key, s in summaries.items():
        task, arch = key.split("/")
        lines.append(f"| {ARCHS[arch][0]} | {task} | {s['params'] or '?'} | {s['steps'] or '?'} |")
    for task, res in results.items():
        lines += ["", f"## {task}: medians over {len(res['rows']['input'])} clip × condition pairs", "",
                  "| method | SI-SDR (dB) | PEAQ ODG | R_nonlin | FAD (log-mel) | speed (× real time) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for label, rows in res["rows"].items():
            speed = res["speed_x_realtime"].get(label)
            lines.append(f"| {label} | {med([r['si_sdr'] for r in rows]):.2f} | {med([r['peaq'] for r in rows]):.2f} | "
                         f"{med([r['rnonlin'] for r in rows]):.3f} | {res['fad'][label]:.3f} | "
                         f"{'-' if label == 'input' or speed is None else f'{speed:.0f}'} |")
        lines += ["", f"Median SI-SDR improvement (dB) by {res['condition_name']}:", "",
                  "| method | " + " | ".join(f"{c:g}" for c in res["conditions"]) + " |",
                  "|---|" + "---:|" * len(res["conditions"])]
        for label, rows in res["rows"].items():
            if label == "input":
                continue
            cells = [med([r["si_sdr"] - r["si_sdr_in"] for r in rows if r["condition"] == c]) for c in res["conditions"]]
            lines.append(f"| {label} | " + " | ".join(f"{v:+.2f}" for v in cells) + " |")
    lines += ["", f"## Kendall rank correlation between metrics ({tau['n']} scored outputs; paper Table I: "
              "SI-SDR/PEAQ 0.37, SI-SDR/R_nonlin 0.53, PEAQ/R_nonlin 0.56)", "",
              "| | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for a in METRICS:
        lines.append(f"| {a} | " + " | ".join(f"{tau[a][b]:.2f}" for b in METRICS) + " |")
    return "\n".join(lines) + "\n"


def plots(results: dict, out: Path) -> None:
    from fxnet.metrics.plots import boxplot, sweep_plot

    for task, res in results.items():
        box = {label: {m: [r[m] for r in rows] for m in METRICS} for label, rows in res["rows"].items()}
        for label in box:
            box[label]["fad"] = [res["fad"][label]]
        boxplot(box, out / f"box_{task}.png", metrics=[*METRICS], title=f"paper 001 reproduction: {task}")
        curves = {label: {c: [r["si_sdr"] - r["si_sdr_in"] for r in rows if r["condition"] == c]
                          for c in res["conditions"]}
                  for label, rows in res["rows"].items() if label != "input"}
        sweep_plot(curves, out / f"sweep_{task}.png", res["condition_name"], "ΔSI-SDR (dB)",
                   title=f"paper 001 reproduction: {task}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 clips, every other condition, 45 s per model")
    ap.add_argument("--seconds", type=float, help="training seconds per model (default 480; --quick: 45)")
    ap.add_argument("--out", help="output folder (default bench/out/imort2022[-quick])")
    ap.add_argument("--segment", type=int, default=32768, help="training segment (samples at 16 kHz)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--parallel", type=int, default=2, help="trainings at a time (one thread each)")
    ap.add_argument("--retrain", action="store_true", help="train again even when OUT/models has the model")
    ap.add_argument("--no-aspade", action="store_true", help="leave A-SPADE out (it is slow)")
    ap.add_argument("--no-bundled", action="store_true", help="leave the bundled declip model out")
    ap.add_argument("--aspade-window", type=int, default=1024, help="A-SPADE frame length at 16 kHz")
    ap.add_argument("--threads", type=int, default=2, help="torch threads while scoring")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all)")
    ap.add_argument("--archs", help="comma-separated architectures (default: the paper's per task)")
    ap.add_argument("--direct", action="store_true",
                    help="models output the estimate (the paper's form), not y = x + correction (fxnet's default)")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 45.0 if args.quick else 480.0
    if args.quick:
        args.segment, args.batch_size = min(args.segment, 16384), min(args.batch_size, 8)
    for task in list(TASKS):
        if task not in args.tasks.split(","):
            del TASKS[task], TASK_ARCHS[task]
        elif args.archs:
            TASK_ARCHS[task] = [a for a in TASK_ARCHS[task] if a in args.archs.split(",")]
    out = Path(args.out or ROOT / "bench" / "out" / ("imort2022-quick" if args.quick else "imort2022"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summaries = train_all(out / "models", args)
    torch.set_num_threads(args.threads)
    clips = test_clips(args.quick)
    log(f"{len(clips)} held-out clips at {SR} Hz: {', '.join(n for n, _ in clips)}")
    results = {task: score_task(task, clips, out / "models", args) for task in TASKS}
    tau = kendall(results)
    wall = time.perf_counter() - t0
    doc = {"paper": "imort2022", "quick": args.quick, "seconds_per_model": args.seconds, "sample_rate": SR,
           "clips": [n for n, _ in clips], "models": summaries, "kendall": tau, "wall_seconds": wall,
           "results": results}
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=float))
    text = markdown(results, tau, summaries, args, wall)
    (out / "results.md").write_text(text)
    plots(results, out)
    print(text)
    log(f"wrote {out}/results.md, results.json, box_*.png, sweep_*.png")


if __name__ == "__main__":
    main()
