"""Training pairs generated on the fly: fxnet.synth material through a reference effect.

After SignalTrain (Hawley et al. 2019): random synthetic clips, knobs drawn from
Beta(0.8, 0.8) per example. A pool of ``pool_clips`` dry clips (about a second each) is
generated once; every ``refresh_every`` steps ``refresh_clips`` of them are replaced
(round robin), so generation costs little next to the model's step and the material
keeps changing. Each example is a random crop of ``left + n + right`` samples that the
effect processes *whole*, starting from rest: the target then depends only on input the
model sees. The effect runs once per batch with per-row knobs.

Onsets (``onset_share``): a file starts from silence, so at its start an effect with
memory (a leveller's seconds-long release) is in a state that a crop from the middle of
a clip never shows. With ``onset_share`` > 0 that share of the examples has its crop
silenced before a random point in the left context or the first half of the output.
The effect still processes the crop whole from rest, so the target stays exact.

The pool is a pure function of (data seed, refresh count): refresh ``r`` writes slots
``(r-1)*R .. r*R-1`` (mod the pool size) with clips seeded by ``(seed, r)``. Resuming at
step ``s`` rebuilds exactly the pool the interrupted run had, with nothing saved.

Validation: ``val_clips`` held-out clips (their own seed) at every knob setting of a
grid (:func:`knob_grid`), processed the same way.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
import torch

from fxnet.effects import get_effect
from fxnet.errors import UsageError
from fxnet.synth import draw_knobs, generate
from fxnet.train.data import CropLayout, Direction, ValidationSet

#: Defaults for the clip pool.
POOL_CLIPS = 256
REFRESH_EVERY = 50
REFRESH_SHARE = 1 / 8
VAL_CLIPS = 4
#: Most knob settings in the validation grid.
GRID_SETTINGS = 16


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def knob_grid(k: int, *, max_settings: int = GRID_SETTINGS,
              steps: Sequence[int | None] | None = None) -> list[tuple[float, ...]]:
    """A full grid of normalised knob settings with at most ``max_settings`` points.

    A switch (``steps[i]`` positions) takes each of its positions; the continuous knobs
    share what is left of the budget: ``levels = min(5, floor(budget ** (1/k)))`` (at
    least 2) evenly spaced values per knob, ends included: 1 knob -> 5 settings, 2 -> 16,
    3 and 4 -> 8 and 16 (0 and 1 only). With more knobs, ``max_settings`` corners of the
    0/1 grid evenly spread.
    """
    if k == 0:
        return [()]
    steps = list(steps) if steps is not None else [None] * k
    switch = [int(s) if s and s > 1 else 0 for s in steps]
    n_cont = sum(1 for s in switch if not s)
    budget = max_settings / max(1, math.prod(s for s in switch if s))
    levels = max(2, min(5, int(math.floor(budget ** (1.0 / max(1, n_cont)) + 1e-9))))
    axes = [np.linspace(0.0, 1.0, s).tolist() if s else np.linspace(0.0, 1.0, levels).tolist() for s in switch]
    grid = [tuple(g) for g in itertools.product(*axes)]
    if len(grid) > max_settings:
        grid = [grid[i] for i in np.linspace(0, len(grid) - 1, max_settings).round().astype(int)]
    return grid


class SynthData:
    """On-the-fly (input, target, knobs) batches from a reference effect; see the module docstring."""

    source = "synth"
    channels = 1

    def __init__(
        self, effect: str, *, layout: CropLayout, sample_rate: int = 44100, seed: int = 0, data_seed: int | None = None,
        direction: Direction = "apply", pool_clips: int = POOL_CLIPS, refresh_every: int = REFRESH_EVERY,
        refresh_clips: int | None = None, val_clips: int = VAL_CLIPS, families: Sequence[str] | None = None,
        start_step: int = 0, peak_dbfs: tuple[float, float] | None = None, onset_share: float = 0.0,
    ) -> None:
        self.effect = get_effect(effect)
        self.knob_specs = self.effect.knobs
        self.layout = layout
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.data_seed = int(seed if data_seed is None else data_seed)
        self.direction = direction
        self.families = tuple(families) if families else None
        if peak_dbfs is not None and not (peak_dbfs[0] <= peak_dbfs[1] <= 0.0):
            raise UsageError(f"--synth-peak-dbfs needs LO <= HI <= 0 dBFS, got {peak_dbfs[0]:g}:{peak_dbfs[1]:g}")
        self.peak_dbfs = tuple(map(float, peak_dbfs)) if peak_dbfs is not None else None
        if not 0.0 <= onset_share <= 1.0:
            raise UsageError(f"--synth-onsets needs a share between 0 and 1, got {onset_share:g}")
        self.onset_share = float(onset_share)
        if pool_clips < 1 or refresh_every < 1:
            raise UsageError("the synth pool needs at least one clip and a refresh interval of at least one step")
        self.pool_clips = int(pool_clips)
        self.refresh_every = int(refresh_every)
        self.refresh_clips = max(1, min(self.pool_clips, int(refresh_clips or round(pool_clips * REFRESH_SHARE))))
        # Crops start from rest; when the target lies before the input's start (latency >
        # left context), the crop is preceded by that many zeros.
        self._pad = max(0, -layout.target_offset)
        self.crop_length = layout.input_length + self._pad
        self.clip_length = max(2 * self.crop_length, self.sample_rate)
        self.samples_per_epoch = self.pool_clips * self.clip_length
        self._refreshes = start_step // self.refresh_every
        self.pool = self._build_pool(self._refreshes)
        self.validation = self._validation(val_clips)

    # -- pool -------------------------------------------------------------------
    def _clips(self, refresh: int, count: int) -> np.ndarray:
        clips = generate(count, self.clip_length, self.sample_rate, seed=_derive_seed(self.data_seed, refresh),
                         families=self.families)
        return self._levels(clips, _derive_seed(self.data_seed, refresh, 0x6C6576))

    def _levels(self, clips: np.ndarray, seed: int) -> np.ndarray:
        """Rescale each clip to a peak level drawn uniformly in ``peak_dbfs`` (when set).

        Level matters for effects with a fixed gain (sox overdrive): a recording is
        usually normalised, not 40 dB down.
        """
        if self.peak_dbfs is None:
            return clips
        rng = np.random.default_rng(seed)
        target = 10.0 ** (rng.uniform(*self.peak_dbfs, size=len(clips)) / 20.0)
        peak = np.max(np.abs(clips), axis=-1)
        return (clips * (target / np.maximum(peak, 1e-9))[:, None]).astype(np.float32)

    def _slots(self, refresh: int) -> np.ndarray:
        r = self.refresh_clips
        return (np.arange(r) + (refresh - 1) * r) % self.pool_clips

    def _build_pool(self, refreshes: int) -> np.ndarray:
        owner = np.zeros(self.pool_clips, np.int64)  # the refresh that last wrote each slot
        owner_index = np.arange(self.pool_clips)  # ... and which of its clips
        first = max(1, refreshes - math.ceil(self.pool_clips / self.refresh_clips))
        for r in range(first, refreshes + 1):
            owner[self._slots(r)] = r
            owner_index[self._slots(r)] = np.arange(self.refresh_clips)
        pool = np.empty((self.pool_clips, self.clip_length), np.float32)
        for r in np.unique(owner):
            count = self.pool_clips if r == 0 else self.refresh_clips
            clips = self._clips(int(r), count)
            mask = owner == r
            pool[mask] = clips[owner_index[mask]]
        return pool

    def _advance(self, step: int) -> None:
        target = step // self.refresh_every
        while self._refreshes < target:
            self._refreshes += 1
            self.pool[self._slots(self._refreshes)] = self._clips(self._refreshes, self.refresh_clips)

    # -- examples ---------------------------------------------------------------
    def _snap(self, knobs: np.ndarray) -> np.ndarray:
        for i, spec in enumerate(self.knob_specs):
            if spec.steps and spec.steps > 1:
                knobs[:, i] = np.round(knobs[:, i] * (spec.steps - 1)) / (spec.steps - 1)
        return knobs

    def _pairs(self, dry: np.ndarray, knobs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, crop_length) dry crops -> model inputs (B, 1, L) and targets (B, 1, n)."""
        wet = self.effect(dry, self.sample_rate, knobs.astype(np.float64))
        x, y = (dry, wet) if self.direction == "apply" else (wet, dry)
        lay, p = self.layout, self._pad
        inputs = x[:, p : p + lay.input_length]
        t0 = p + lay.target_offset
        targets = y[:, t0 : t0 + lay.n]
        return (torch.from_numpy(np.ascontiguousarray(inputs, np.float32))[:, None],
                torch.from_numpy(np.ascontiguousarray(targets, np.float32))[:, None])

    def sample(self, batch: int, rng: np.random.Generator, step: int) -> tuple[torch.Tensor, ...]:
        """A random batch for training step ``step``: inputs (B, 1, L), targets (B, 1, n), knobs (B, K)."""
        self._advance(step)
        clip = rng.integers(0, self.pool_clips, size=batch)
        start = rng.integers(0, self.clip_length - self.crop_length + 1, size=batch)
        knobs = self._snap(draw_knobs(batch, len(self.knob_specs), rng))
        dry = self.pool[clip[:, None], start[:, None] + np.arange(self.crop_length)]
        if self._pad:
            dry[:, : self._pad] = 0.0
        if self.onset_share:
            self._onsets(dry, rng)
        x, y = self._pairs(dry, knobs)
        return x, y, torch.from_numpy(knobs)

    def _onsets(self, dry: np.ndarray, rng: np.random.Generator) -> None:
        """Silence a random share of the crops before a point in the context or the first
        half of the output (in place): the start of a file, as the effect meets it."""
        lay = self.layout
        rows = np.flatnonzero(rng.random(dry.shape[0]) < self.onset_share)
        last = self._pad + max(1, lay.target_offset + lay.n // 2)
        cut = rng.integers(self._pad, last, size=rows.size)
        dry[rows] *= np.arange(dry.shape[1])[None, :] >= cut[:, None]

    def _validation(self, val_clips: int) -> ValidationSet:
        clips = generate(val_clips, self.crop_length, self.sample_rate, seed=_derive_seed(self.seed, 0x76616C),
                         families=self.families)
        clips = self._levels(clips, _derive_seed(self.seed, 0x76616C, 0x6C6576))
        if self._pad:
            clips[:, : self._pad] = 0.0
        settings = knob_grid(len(self.knob_specs), steps=[spec.steps for spec in self.knob_specs])
        knobs = self._snap(np.repeat(np.array(settings, np.float32).reshape(len(settings), -1), val_clips, axis=0))
        dry = np.tile(clips, (len(settings), 1))
        x, y = self._pairs(dry, knobs)
        setting = torch.arange(len(settings)).repeat_interleave(val_clips)
        return ValidationSet(x, y, torch.from_numpy(knobs), setting, settings)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "effect": self.effect.name,
            "seed": self.seed,
            "pool_clips": self.pool_clips,
            "clip_seconds": round(self.clip_length / self.sample_rate, 3),
            "refresh": f"{self.refresh_clips} clips every {self.refresh_every} steps",
            "families": list(self.families) if self.families else "all",
            "knob_distribution": "Beta(0.8, 0.8)",
            "peak_dbfs": list(self.peak_dbfs) if self.peak_dbfs else "as generated",
            "onset_share": self.onset_share,
            "validation": f"{self.validation.inputs.shape[0] // max(1, len(self.validation.settings))} held-out "
                          f"clips x {len(self.validation.settings)} knob settings",
        }
