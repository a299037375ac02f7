"""An LA-2A-style optical leveller: a deterministic digital emulation, not a circuit model.

No recordings of a real Teletronix LA-2A are available to fxnet, so the bundled ``la2a``
model learns this emulation of the unit's documented behaviour (reference/effects.md):
an optical T4 cell with ~10 ms attack and a two-stage, program-dependent release
(about 60 ms for the first half of the gain recovery, then 0.5-5 s for the rest, slower
after long or heavy compression), a soft knee, and a Compress/Limit switch.

Knobs (normalised, in this order, as the literature conditions on them):
``limit`` in {0, 1} (Compress / Limit) and ``peak_reduction`` (0-100 front-panel dial).

Per row, from zero state (all times are exponential time constants τ, coefficients
``a(τ) = exp(-1 / (sr τ))``), PR = peak_reduction::

    T = 10 - 0.5 PR  dBFS           threshold: PR 0 never compresses a full-scale signal,
                                    PR 100 starts at -40 dBFS
    R = 3 (compress) or 10 (limit); W = 10 dB knee width; S = 1 - 1/R
    e[n] = |x[n]| if |x[n]| > e[n-1] else a(10 ms) e[n-1]       EL-panel peak detector
    L[n] = max(20 log10(e[n] + 1e-8), -96);  o = L[n] - T
    r*[n] = 0 if 2o <= -W;  S (o + W/2)² / (2W) if |2o| < W;  S o otherwise   (target, dB)
    two cell states, each approaching r* with a(10 ms) when r* > state (attack) and
    otherwise releasing with
        fast:  τ = 20 ms                 (≈ 95 % of its share recovered after 60 ms)
        slow:  τ = 0.5 s + 4.5 s · h[n-1]
    r[n] = 0.5 fast[n] + 0.5 slow[n]                        gain reduction, dB
    u[n] = min(r*[n] / 10 dB, 1)
    h[n] = u + (h[n-1] - u) a(2 s) if u > h[n-1] else u + (h[n-1] - u) a(10 s)
    y[n] = x[n] 10^((makeup_db - r[n]) / 20)

``h`` is the cell's memory of how hard and how long it has been lit: it charges over
seconds while the detector asks for heavy (≥ 10 dB) reduction and discharges over ~10 s
once it does not, stretching the slow release from 0.5 s towards 5 s. Measured on a
1 kHz tone with 16 dB of reduction: 63 % of the attack in 10 ms; after the tone stops,
~48 % of the gain is back in 60 ms, and the rest follows with τ ≈ 0.7 s after a 0.1 s
burst but τ ≈ 4-5 s after 3-8 s of compression.

Properties (tested): every update above is non-decreasing in the target r*, and r* is
non-decreasing in PR (lower T) and in R (same knee), so the gain reduction at every
sample grows monotonically with peak_reduction, and limit mode reduces at least as much
as compress mode everywhere, by (1 - 1/10)/(1 - 1/3) = 1.35x above the knee.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit

from fxnet.effects._common import as_rows, check_sample_rate, from_rows, knob_rows, physical
from fxnet.knobs import KnobSpec

KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("limit", 0.0, 1.0, "", 0.0, steps=2, description="0 = Compress, 1 = Limit (higher ratio)"),
    KnobSpec("peak_reduction", 0.0, 100.0, "%", 0.5, description="amount of compression (front-panel dial)"),
)

THRESHOLD_AT_ZERO_DB = 10.0  #: threshold (dBFS) with peak_reduction at 0
THRESHOLD_DB_PER_STEP = 0.5  #: threshold drop (dB) per peak_reduction step
RATIO_COMPRESS = 3.0
RATIO_LIMIT = 10.0
KNEE_DB = 10.0
DETECTOR_RELEASE_S = 0.010
ATTACK_S = 0.010
FAST_RELEASE_S = 0.020
SLOW_RELEASE_MIN_S = 0.5
SLOW_RELEASE_MAX_S = 5.0
FAST_SHARE = 0.5
_DB_PER_NEPER = 20.0 / math.log(10.0)  # 20 log10(v) == _DB_PER_NEPER * ln(v)
HEAVY_REDUCTION_DB = 10.0
MEMORY_CHARGE_S = 2.0
MEMORY_DISCHARGE_S = 10.0


@njit(cache=True)
def _la2a_rows(x, threshold_db, slope, makeup_db, sr, out):  # pragma: no cover - compiled
    rows, n = x.shape
    a_env = math.exp(-1.0 / (sr * DETECTOR_RELEASE_S))
    a_att = math.exp(-1.0 / (sr * ATTACK_S))
    a_fast = math.exp(-1.0 / (sr * FAST_RELEASE_S))
    a_charge = math.exp(-1.0 / (sr * MEMORY_CHARGE_S))
    a_discharge = math.exp(-1.0 / (sr * MEMORY_DISCHARGE_S))
    half_knee = 0.5 * KNEE_DB
    for r in range(rows):
        t = threshold_db[r]
        s_ratio = slope[r]
        makeup = makeup_db[r]
        env = 0.0
        fast = 0.0
        slow = 0.0
        mem = 0.0
        for i in range(n):
            xv = x[r, i]
            ax = abs(xv)
            env = ax if ax > env else env * a_env
            level = _DB_PER_NEPER * math.log(env + 1e-8)
            if level < -96.0:
                level = -96.0
            over = level - t
            if over <= -half_knee:
                target = 0.0
            elif over < half_knee:
                q = over + half_knee
                target = s_ratio * q * q / (2.0 * KNEE_DB)
            else:
                target = s_ratio * over
            if target > fast:
                fast = target + (fast - target) * a_att
            else:
                fast = target + (fast - target) * a_fast
            if target > slow:
                slow = target + (slow - target) * a_att
            else:
                tau = SLOW_RELEASE_MIN_S + (SLOW_RELEASE_MAX_S - SLOW_RELEASE_MIN_S) * mem
                slow = target + (slow - target) * math.exp(-1.0 / (sr * tau))
            red = FAST_SHARE * fast + (1.0 - FAST_SHARE) * slow
            u = target / HEAVY_REDUCTION_DB
            if u > 1.0:
                u = 1.0
            mem = u + (mem - u) * (a_charge if u > mem else a_discharge)
            gain_db = makeup - red
            out[r, i] = xv if gain_db == 0.0 else xv * math.exp(gain_db / _DB_PER_NEPER)


def la2a(
    x: np.ndarray,
    sample_rate: int,
    knobs: Sequence[float] | np.ndarray,
    *,
    makeup_db: float = 0.0,
) -> np.ndarray:
    """Level ``x`` (..., samples) with normalised knobs [limit, peak_reduction]; float32 out.

    ``makeup_db`` is a fixed output gain (the LA-2A's Gain control), 0 dB by default.
    """
    sr = check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    k = knob_rows(knobs, KNOBS, shape, "la2a")
    limit, peak_reduction = physical(KNOBS, k)
    threshold_db = THRESHOLD_AT_ZERO_DB - THRESHOLD_DB_PER_STEP * peak_reduction
    ratio = np.where(limit >= 0.5, RATIO_LIMIT, RATIO_COMPRESS)
    slope = 1.0 - 1.0 / ratio
    makeup = np.full(rows.shape[0], float(makeup_db))
    out = np.empty_like(rows)
    _la2a_rows(rows, threshold_db, slope, makeup, sr, out)
    return from_rows(out, shape)
