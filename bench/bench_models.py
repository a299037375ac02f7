"""Inference and training speed of fxnet's effect architectures on this CPU.

Inference: 10 s of mono 44.1 kHz noise through ``fxnet.engine.process_tensor`` with a
freshly initialised model in eval mode, for several batch sizes and chunk sizes; the best
is reported as x real time (audio seconds per wall second). Training: Adam steps per
second on a batch of 16 x ~1 s (output samples, rounded up to the model's multiple, plus
its context), L1 loss against a fixed gain of the input.

    python bench/bench_models.py                 # all configurations
    python bench/bench_models.py tcn-16 rnn-16   # some of them
    python bench/bench_models.py --list
    python bench/bench_models.py --quality comp4c tcn-16 rnn-16-seg16k   # short training runs
    python bench/bench_models.py --registry [--quick] [--threads 1]     # steps/s of every architecture

``--registry`` measures training steps per second of every architecture in
``fxnet.models.available()`` with its default hyper-parameters, at ``fxnet profile``'s
default batch and crop (16 examples of 8192 output samples, rounded up to the model's
multiple, plus its context) and default loss (``esr+0.5*mrstft``, ``--loss`` to change):
the trainer's step (forward, loss, backward, gradient clipping, AdamW) on random input,
without data loading or validation. It prints the fastest and the median step time of
``--repeats`` x 8 steps after a warm-up step (``--quick``: 1 x 3).

``--quality EFFECT`` compares configurations by what they learn rather than by speed:
each trains from the same seed for ``--steps`` Adam steps (16 x 8192 output samples per
step, cosine-decayed lr 3e-3, ESR loss) on synthetic material (``fxnet.synth``) processed
by a reference effect (``fxnet.effects``) at random knob settings, then reports the ESR
on held-out clips and knob settings (lower is better; NAM's verdicts: < 0.01 great,
< 0.035 not bad). It runs on one thread.

Other processes on the machine distort the numbers, two-thread ones most: with two
threads every op waits for its second thread, and when another process holds a core
that thread gets a time slice only every few ms (a small-op model can run 50x slower).
Each figure is the best of ``--repeats`` runs, and each ``busy`` column says how much of
the machine other processes used during that best run (from /proc/stat, minus this
process; 50 % = one of two cores).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import torch

from fxnet.engine import process_tensor
from fxnet.models import build

SR = 44100
KNOBS = [{"name": "a"}, {"name": "b"}]

_TCN_CHUNKS = [8192, 16384, 32768, 65536]
_RNN_CHUNKS = [16384, 32768, 65536]
#: name -> (model config, chunk sizes to try in the engine, in output samples)
CONFIGS: dict[str, tuple[dict[str, Any], list[int]]] = {
    "signaltrain": ({"arch": "signaltrain"}, [8 * 2048, 16 * 2048, 32 * 2048]),
    "signaltrain-ref": ({"arch": "signaltrain", "dft_layout": "reference"}, [8 * 2048, 16 * 2048]),
    "tcn-100": ({"arch": "tcn", "channels": 32, "kernel": 5}, _TCN_CHUNKS),
    "tcn-300": ({"arch": "tcn", "channels": 32, "kernel": 13}, _TCN_CHUNKS[1:]),
    "tcn-24": ({"arch": "tcn", "channels": 24, "kernel": 5}, _TCN_CHUNKS),
    "tcn-16": ({"arch": "tcn", "channels": 16, "kernel": 5}, _TCN_CHUNKS),
    "tcn-16-k9": ({"arch": "tcn", "channels": 16, "kernel": 9}, _TCN_CHUNKS),
    "tcn-12": ({"arch": "tcn", "channels": 12, "kernel": 5}, _TCN_CHUNKS),
    "tcn-12-k9": ({"arch": "tcn", "channels": 12, "kernel": 9}, _TCN_CHUNKS),
    "tcn-8": ({"arch": "tcn", "channels": 8, "kernel": 5}, _TCN_CHUNKS),
    "rnn-16": ({"arch": "rnn", "hidden": 16, "warmup": 4096, "segment": 4096}, _RNN_CHUNKS),
    "rnn-16-seg16k": ({"arch": "rnn", "hidden": 16, "warmup": 4096, "segment": 16384}, _RNN_CHUNKS),
    "rnn-24-seg16k": ({"arch": "rnn", "hidden": 24, "warmup": 4096, "segment": 16384}, _RNN_CHUNKS),
    "rnn-32": ({"arch": "rnn", "hidden": 32, "warmup": 4096, "segment": 4096}, _RNN_CHUNKS),
    "rnn-32-seg16k": ({"arch": "rnn", "hidden": 32, "warmup": 4096, "segment": 16384}, _RNN_CHUNKS),
}
BATCHES = [8, 16, 32]


class OtherLoad:
    """Share of all CPUs used by other processes between start() and stop()."""

    def start(self) -> None:
        self._t, self._busy, self._own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def stop(self) -> float:
        wall = time.perf_counter() - self._t
        others = (_busy_seconds() - self._busy) - (_own_seconds() - self._own)
        return max(0.0, others / (wall * (os.cpu_count() or 1)))


def _busy_seconds() -> float:
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _best(fn, repeats: int) -> tuple[float, float]:
    """(shortest wall time of ``repeats`` calls, other processes' CPU share during it)."""
    load = OtherLoad()
    best = (math.inf, 0.0)
    for _ in range(repeats):
        load.start()
        t = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t, load.stop()))
    return best


def bench_inference(model, chunks: list[int], repeats: int, seconds: float = 10.0) -> tuple[float, int, int, float]:
    """Best x real time over (batch, chunk); returns (speed, batch, chunk, others' load)."""
    audio = torch.randn(1, int(seconds * SR)) * 0.3
    knobs = [0.5] * model.num_knobs
    best = (0.0, 0, 0, 0.0)
    for chunk in chunks:
        geometry = model.geometry.with_overrides(chunk=chunk)
        for batch in BATCHES:
            if math.ceil(audio.shape[1] / geometry.chunk) < batch / 2 and batch > BATCHES[0]:
                continue  # the file has fewer chunks than half the batch: same as a smaller batch
            run = lambda: process_tensor(model, audio, knobs=knobs, geometry=geometry, batch_size=batch)
            run()  # warm-up (allocations, oneDNN primitive creation)
            wall, busy = _best(run, repeats)
            best = max(best, (seconds / wall, batch, geometry.chunk, busy))
    return best


def bench_training(model, repeats: int, steps: int = 5, batch: int = 16) -> tuple[float, float]:
    """Adam steps per second on batch x ~1 s of output (plus the model's context)."""
    g = model.geometry
    n = math.ceil(SR / g.multiple) * g.multiple
    x = torch.randn(batch, 1, g.left_context + n + g.right_context) * 0.3
    target = 0.5 * x[..., g.left_context : g.left_context + n]
    knobs = torch.rand(batch, model.num_knobs)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = (model(x, knobs) - target).abs().mean()
        loss.backward()
        opt.step()

    step()
    wall, busy = _best(step, repeats * steps)
    model.eval()
    return 1.0 / wall, busy


def registry_training_speed(threads: list[int], repeats: int, steps: int, loss_spec: str) -> list[dict[str, Any]]:
    """Training steps/s of every registered architecture at its defaults (see the docstring)."""
    from fxnet.models import available
    from fxnet.train.data import CropLayout
    from fxnet.train.loop import TrainConfig
    from fxnet.train.losses import parse_loss

    cfg = TrainConfig(loss=loss_spec)
    loss_fn = parse_loss(cfg.loss)
    header = (f"{'arch':<12} {'params':>9} {'context':>7} {'crop':>6} {'thr':>3} {'steps/s':>8} {'median':>7} "
              f"{'audio x':>7} {'busy':>5}")
    print(f"training speed at fxnet profile's defaults: batch {cfg.batch_size}, segment {cfg.segment}, "
          f"loss {cfg.loss}, AdamW, grad clip {cfg.grad_clip}; steps/s = fastest step, median = median step; "
          f"audio x = seconds of target audio trained per second (at the median)")
    print(header)
    print("-" * len(header))
    rows = []
    for arch in available():
        torch.manual_seed(0)
        try:
            model = build({"arch": arch, "sample_rate": SR, "knobs": KNOBS})
        except Exception as e:  # an architecture that cannot take knobs, say: report, go on
            print(f"{arch:<12} cannot build with 2 knobs: {e}")
            continue
        layout = CropLayout.from_geometry(model.geometry, cfg.segment)
        x = torch.randn(cfg.batch_size, model.geometry.channels, layout.input_length) * 0.3
        target = 0.5 * x[..., layout.target_offset : layout.target_offset + layout.n]
        knobs = torch.rand(cfg.batch_size, model.num_knobs)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        model.train()

        def step() -> None:
            loss = loss_fn(model(x, knobs), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()

        params = sum(p.numel() for p in model.parameters())
        context = layout.left + layout.right
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            step()  # warm-up
            load, times = OtherLoad(), []
            load.start()
            for _ in range(repeats * steps):
                t = time.perf_counter()
                step()
                times.append(time.perf_counter() - t)
            busy = load.stop()
            times.sort()
            best, median = 1.0 / times[0], 1.0 / times[len(times) // 2]
            audio = median * cfg.batch_size * layout.n / SR
            rows.append({"arch": arch, "params": params, "context": context, "crop": layout.n, "threads": n_threads,
                         "steps_per_second": best, "median_steps_per_second": median, "busy": busy})
            print(f"{arch:<12} {params:>9,} {context:>7} {layout.n:>6} {n_threads:>3} {best:>8.2f} {median:>7.2f} "
                  f"{audio:>7.1f} {busy:>5.0%}", flush=True)
    return rows


def quality_probe(effect_name: str, names: list[str], steps: int, seed: int = 0) -> None:
    """Train each configuration briefly on ``effect_name`` and print its validation ESR."""
    import numpy as np

    from fxnet.effects import get_effect
    from fxnet.synth import draw_knobs, generate

    effect = get_effect(effect_name)
    k = len(effect.knobs)
    samples_per_step, n_train, n_val = 16 * 8192, 384, 32
    models = {}
    for name in names:
        torch.manual_seed(seed)
        cfg, _ = CONFIGS[name]
        models[name] = build({**cfg, "sample_rate": SR, "knobs": [kn.to_dict() for kn in effect.knobs]})
    outs = {name: math.ceil(8192 / m.geometry.multiple) * m.geometry.multiple for name, m in models.items()}
    left = max(m.geometry.left_context for m in models.values()) + 2048  # + 2048: the effect's own warm-up
    n_max, n_min = max(outs.values()), min(outs.values())
    length = left + n_max
    rng = np.random.default_rng(seed)
    dry = generate(n_train + n_val, length, SR, seed=seed)
    knobs = draw_knobs(n_train + n_val, k, rng)
    wet = np.stack([effect(dry[i], SR, knobs[i]) for i in range(len(dry))]).astype(np.float32)
    dry_t, wet_t, knobs_t = torch.from_numpy(dry), torch.from_numpy(wet), torch.from_numpy(knobs)
    print(f"quality probe: {effect_name}, {steps} steps of {samples_per_step} output samples, "
          f"{n_train} training / {n_val} validation examples")
    val_dry = dry_t[n_train:, length - n_min :]
    val_wet = wet_t[n_train:, length - n_min :]
    print(f"(the dry signal itself scores ESR {((val_dry - val_wet).pow(2).sum() / val_wet.pow(2).sum()).item():.4f})")
    print(f"{'config':<16} {'params':>9} {'val ESR':>9} {'train s':>8}")
    torch.set_num_threads(1)
    for name, model in models.items():
        g, n = model.geometry, outs[name]
        span = g.left_context + n + g.right_context
        # Example i: the output is the last n samples of clip i (zeros after its end).
        padded = torch.nn.functional.pad(dry_t, (0, g.right_context))
        x_all = padded[:, None, length + g.right_context - span :]
        y_all = wet_t[:, None, length - n :]
        batch = max(1, samples_per_step // n)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        gen = torch.Generator().manual_seed(seed)
        model.train()
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, n_train, (batch,), generator=gen)
            pred = model(x_all[idx], knobs_t[idx])
            target = y_all[idx]
            loss = (pred - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        train_s = time.perf_counter() - t0
        model.eval()
        with torch.inference_mode():
            val = slice(n_train, n_train + n_val)
            pred = model(x_all[val], knobs_t[val])[..., -n_min:]  # the same samples for every model
            target = y_all[val][..., -n_min:]
            esr = ((pred - target).pow(2).sum() / target.pow(2).sum()).item()
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<16} {params:>9,} {esr:>9.4f} {train_s:>8.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="configurations to run (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to try")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--quality", metavar="EFFECT", help="train briefly on this reference effect instead")
    parser.add_argument("--steps", type=int, default=300, help="training steps of --quality")
    parser.add_argument("--registry", action="store_true",
                        help="training steps/s of every registered architecture at its defaults")
    parser.add_argument("--loss", default=None, help="loss of --registry (default: fxnet profile's)")
    parser.add_argument("--quick", action="store_true", help="one repeat (and 3 steps per --registry row)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    if args.list:
        for name, (cfg, _) in CONFIGS.items():
            print(name, cfg)
        return
    names = args.names or list(CONFIGS)
    if args.quality:
        quality_probe(args.quality, names, args.steps)
        return
    threads = [int(t) for t in args.threads.split(",")]
    if args.registry:
        from fxnet.train.loop import DEFAULT_LOSS

        registry_training_speed(threads, args.repeats, 3 if args.quick else 8, args.loss or DEFAULT_LOSS)
        return
    header = (f"{'config':<16} {'params':>9} {'context':>7} {'thr':>3} {'x RT':>7} {'batch':>5} {'chunk':>6} "
              f"{'busy':>5} {'train/s':>8} {'busy':>5}")
    print(header)
    print("-" * len(header))
    for name in names:
        cfg, chunks = CONFIGS[name]
        torch.manual_seed(0)
        model = build({**cfg, "sample_rate": SR, "knobs": KNOBS}).eval()
        params = sum(p.numel() for p in model.parameters())
        g = model.geometry
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            speed, batch, chunk, busy = bench_inference(model, chunks, args.repeats)
            train, train_busy = (math.nan, math.nan) if args.no_train else bench_training(model, args.repeats)
            print(
                f"{name:<16} {params:>9,} {g.left_context + g.right_context:>7} {n_threads:>3} {speed:>7.1f} "
                f"{batch:>5} {chunk:>6} {busy:>5.0%} {train:>8.2f} {train_busy:>5.0%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
