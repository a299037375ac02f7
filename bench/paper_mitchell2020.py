"""Reproduce paper 000's Table I ablations (Mitchell & Hawley 2020, "Exploring Quality and
Generalizability in Parameterized Neural Audio Effects") with fxnet's SignalTrain:

    python bench/paper_mitchell2020.py --quick            # a few minutes on 2 CPU cores
    python bench/paper_mitchell2020.py                    # the published run (docs/results.md), 11 min

Three SignalTrain models learn SignalTrain's 4-knob compressor (comp4c) with the paper's
recipe (log-cosh loss, Adam with 1cycle, random synthetic signals, knobs ~ Beta(0.8, 0.8)),
the same number of steps each, same seed and data:
- baseline: trainable DFT front/back end, final skip y = synth + x;
- frozen: the DFT layers frozen at their Fourier initialisation (``freeze_dft=true``);
- no skip: the final skip removed (``final_skip=false``).
Each is then scored on held-out material (GM-rendered guitar, bass/drums, piano, strings,
never seen in training) against the reference comp4c at 16 settings that all compress (threshold -30/-15 dB, ratio 3/5,
attack and release 1/40 ms; the cube's corners would be mostly bypass): mean log-cosh
(the paper's loss) and median ESR, next to doing nothing. Prints and writes OUT/results.md
and OUT/results.json, and draws the validation curves (OUT/curves.png, the paper's Fig. 2).

Paper Table I (1000 epochs, RTX 2080 Ti, 12.8 h): validation loss baseline 7.67e-6,
frozen 5.13e-5 (8.7x worse, 11.6 % faster), no skip 9.00e-6 (1.17x worse, same time).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout, not an installed fxnet
SR = 44100
VARIANTS = {"baseline": [], "frozen DFT": ["freeze_dft=true"], "no final skip": ["final_skip=false"]}
PAPER = {"baseline": (12.81, 7.666e-6), "frozen DFT": (10.90, 5.128e-5), "no final skip": (12.81, 9.000e-6)}


def slug(name: str) -> str:
    return name.replace(" ", "_")


def command(variant: str, out: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "fxnet", "profile", "--synth", "comp4c", "--arch", "signaltrain"]
    for item in VARIANTS[variant]:
        cmd += ["--arch-config", item]
    return cmd + ["--loss", "logcosh", "--schedule", "onecycle", "--lr", str(args.lr), "--batch-size",
                  str(args.batch_size), "--steps", str(args.steps), "--checkpoint-every", str(args.checkpoint_every),
                  "--seed", "0", "--threads", "1", "-o", str(out), "--force", "--quiet"]


def held_out_references(knob_grid) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """(clip, [reference comp4c output per setting]) for each held-out clip, computed once
    and shared by every variant: rendered guitar, bass/drums, piano and strings, 10 s each,
    peak-normalised to -1 dBFS so that every setting of the grid compresses."""
    from fxnet.effects import get_effect

    comp = get_effect("comp4c")
    refs = []
    for p in sorted([ROOT / "examples" / "guitar.flac", *(ROOT / "bench" / "data").glob("*.flac")]):
        x, _ = sf.read(p, dtype="float32", always_2d=True)
        x = x.mean(axis=1)[: 10 * SR]
        x = (x * (10 ** (-1 / 20) / np.abs(x).max())).astype(np.float32)
        refs.append((x, [comp(x, SR, knobs).astype(np.float64) for knobs in knob_grid]))
    return refs


def held_out(model, knob_grid, refs) -> tuple[float, float, list[float]]:
    """(mean log-cosh over every setting and sample, median ESR over settings, ESR per
    setting) of ``model`` (None: the identity, doing nothing) against ``refs`` from
    :func:`held_out_references`."""
    from fxnet.engine import process_tensor

    lc = n = 0.0
    esrs = []
    for i, knobs in enumerate(knob_grid):
        err = ref = 0.0
        for x, ys in refs:
            y = ys[i]
            if model is None:
                yhat = x.astype(np.float64)
            else:
                with torch.inference_mode():
                    yhat = process_tensor(model, torch.from_numpy(x)[None], knobs=knobs)[0].numpy().astype(np.float64)
            d = yhat - y
            err += float(np.sum(d**2))
            ref += float(np.sum(y**2))
            lc += float(np.sum(np.logaddexp(d, -d) - np.log(2.0)))
            n += d.size
        esrs.append(err / ref)
    return lc / n, float(np.median(esrs)), esrs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 steps each, 4 knob settings")
    ap.add_argument("--steps", type=int, help="training steps per variant (default 1000; --quick 300)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (the paper's: 1e-4)")
    ap.add_argument("--parallel", type=int, default=3,
                    help="trainings at a time, one thread each (3: all variants share the CPU alike, so their "
                         "times compare)")
    ap.add_argument("--out", help="output folder (default bench/out/mitchell2020[-quick])")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    args.steps = args.steps or (300 if args.quick else 1000)
    args.checkpoint_every = max(25, args.steps // 20)
    out = Path(args.out or ROOT / "bench" / "out" / ("mitchell2020-quick" if args.quick else "mitchell2020"))
    out.mkdir(parents=True, exist_ok=True)

    def train(variant: str) -> None:
        path = out / f"{slug(variant)}.safetensors"
        if path.exists() and not args.retrain:
            return
        cmd = command(variant, path, args)
        print(f"training {variant}: {' '.join(cmd[2:])}", flush=True)
        with open(path.with_suffix(".log"), "w") as fh:
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode != 0:
                raise SystemExit(f"training '{variant}' failed; see {path.with_suffix('.log')}")

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(train, VARIANTS))

    from fxnet.checkpoint import load_model, read_header

    # every setting compresses: threshold -30 / -15 dB, ratio 3 / 5, attack and release 1 / 40 ms
    # (the knob cube's corners would be 75 % bypass: ratio 1 or a 0 dB threshold)
    grid = [list(c) for c in itertools.product([0.0, 0.5], [0.5, 1.0], [0.0, 1.0], [0.0, 1.0])]
    if args.quick:
        grid = grid[::4]
    refs = held_out_references(grid)
    identity = held_out(None, grid, refs)
    rows = {}
    for variant in VARIANTS:
        path = out / f"{slug(variant)}.safetensors"
        tr = read_header(path).meta["training"]
        model = load_model(path)[0].eval()
        lc, esr, per = held_out(model, grid, refs)
        hist = tr.get("history") or []
        rows[variant] = {"steps": tr["steps"], "wall_seconds": tr["wall_seconds"],
                         "seconds_per_step": tr["wall_seconds"] / max(1, tr["steps"]),
                         "val_esr": (tr.get("validation") or {}).get("esr"), "held_out_logcosh": lc,
                         "held_out_esr": esr, "held_out_esr_per_setting": per, "history": hist,
                         "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
        print(f"{variant:>14}: {tr['steps']} steps in {tr['wall_seconds']:.0f} s; held-out mean log-cosh {lc:.3e}, "
              f"median ESR {esr:.4f}", flush=True)
    base = rows["baseline"]
    lines = [f"# Paper 000 Table I ablations ({args.steps} steps each, batch {args.batch_size}, one CPU thread each)", "",
             f"Held-out: {len(grid)} compressing settings on 4 rendered instruments (10 s each); doing nothing scores "
             f"log-cosh {identity[0]:.3e}, median ESR {identity[1]:.4f}.", "",
             "| variant | train time (s) | time vs baseline | held-out log-cosh | × baseline | held-out median ESR | "
             "paper: time (h) | paper: val loss | paper: × baseline |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, r in rows.items():
        ph, pl = PAPER[variant]
        lines.append(f"| {variant} | {r['wall_seconds']:.0f} | {r['seconds_per_step'] / base['seconds_per_step']:.2f} | "
                     f"{r['held_out_logcosh']:.3e} | {r['held_out_logcosh'] / base['held_out_logcosh']:.2f} | "
                     f"{r['held_out_esr']:.4f} | {ph} | {pl:.3e} | {pl / PAPER['baseline'][1]:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"steps": args.steps, "batch_size": args.batch_size, "grid": grid,
                                                  "identity": {"logcosh": identity[0], "esr": identity[1]},
                                                  "variants": rows}, indent=1))
    draw(rows, out / "curves.png", args)
    print(f"wrote {out}/results.md, results.json, curves.png")


def draw(rows: dict, png: Path, args) -> None:
    """Training log-cosh (the paper's loss, mean since the previous validation) and the
    validation ESR of the training's held-out synthetic clips, against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for variant, r in rows.items():
        h = [x for x in r["history"] if x.get("val_esr")]
        if h:
            steps = [x["step"] for x in h]
            axes[0].plot(steps, [x.get("train_loss") or np.nan for x in h], "o-", ms=3, label=variant)
            axes[1].plot(steps, [x["val_esr"] for x in h], "o-", ms=3, label=variant)
    for ax, label in zip(axes, ("training loss (log-cosh)", "validation ESR (synthetic clips)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"SignalTrain ablations on comp4c (paper 000 Table I / Fig. 2), {args.steps} steps", fontsize=10)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


if __name__ == "__main__":
    main()
