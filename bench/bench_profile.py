"""`fxnet profile` from folders: learn comp4c from ~10 minutes of dry/wet pairs on a knob
grid, then score the model on held-out material (rendered real instruments).

    python bench/bench_profile.py [--seconds 1800] [--dir /tmp/fxnet-profile] [--plot-curve curve.png]

The pairs are made with fxnet's reference comp4c from synthetic music (seed 1234); the
held-out material (examples/guitar.flac, bench/data/*.flac) is never seen in training.
Prints the training command, then the held-out ESR per knob setting, median and worst.
``--plot-curve PNG`` draws the run's validation ESR against training minutes (from the
validation history in the model file's training summary).
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


def plot_curve(model_path: str | Path, png: str | Path, *, title: str = "") -> list[dict]:
    """Draw validation ESR (log scale) vs training minutes of the run that wrote ``model_path``
    into ``png``, from ``training["history"]`` in its metadata; returns that history.

    The training loss (mean since the previous validation) is drawn too when it is positive
    throughout (with ``--loss esr`` it is the training-set ESR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fxnet.checkpoint import read_header

    training = read_header(model_path).meta.get("training") or {}
    history = [h for h in training.get("history") or [] if h.get("val_esr") is not None and h["val_esr"] > 0]
    if not history:
        raise SystemExit(f"{model_path}: no validation history in its training summary (made by an older fxnet?)")
    minutes = np.array([h["seconds"] for h in history]) / 60.0
    val = np.array([h["val_esr"] for h in history])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(minutes, val, "o-", ms=3, label="validation ESR")
    loss = [h.get("train_loss") for h in history]
    if all(v is not None and v > 0 for v in loss):
        ax.plot(minutes, loss, "-", alpha=0.5, label=f"training loss ({training.get('loss', '?')})")
    best = int(np.argmin(val))
    ax.annotate(f"best {val[best]:.4g} (step {history[best]['step']})", (minutes[best], val[best]),
                textcoords="offset points", xytext=(-120, 20), arrowprops={"arrowstyle": "->"})
    ax.set_yscale("log")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("ESR")
    hw = training.get("hardware") or {}
    ax.set_title(title or "fxnet profile", fontsize=10)
    fig.text(0.99, 0.01, f"{training.get('arch', '?')}, {training.get('steps', '?')} steps, "
             f"{hw.get('cpu', hw.get('device', '?'))}, {hw.get('torch_threads', '?')} torch thread(s)",
             ha="right", va="bottom", fontsize=7, color="0.4")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1800)
    ap.add_argument("--dir", default="/tmp/fxnet-profile")
    ap.add_argument("--plot-curve", metavar="PNG", help="draw validation ESR vs training minutes into PNG")
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
    if args.plot_curve:
        plot_curve(out, args.plot_curve, title="fxnet profile: comp4c from folder pairs")
        print(f"wrote {args.plot_curve}")


if __name__ == "__main__":
    main()
