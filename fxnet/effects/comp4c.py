"""SignalTrain's 4-knob feed-forward compressor ("comp4c"), after E. Tarr, *Hack Audio*, p. 428.

Exactly the definition in ``reference/effects.md``; T = threshold (dB), R = ratio,
tA/tR = attack/release (s), sr = sample rate (Hz)::

    alphaA = exp(-ln 9 / (sr tA));   alphaR = exp(-ln 9 / (sr tR))
    xdB[n] = max(20 log10(|x[n]| + 1e-8), -96)
    gc[n]  = T + (xdB[n] - T) / R - xdB[n]   if xdB[n] > T   else 0     (dB)
    g[0]   = 0
    g[n]   = (1 - a) gc[n] + a g[n-1],  a = alphaA if gc[n] < g[n-1] else alphaR   (n >= 1)
    y[n]   = x[n] 10^(g[n] / 20)

Hard knee, per-sample peak detection, smoothing in the gain (dB) domain, no make-up
gain. ``g[0] = 0`` is taken literally: the first output sample is never attenuated.
Each row of a batch is processed independently from that same initial state.
The gain computer is evaluated as ``(T - xdB)(1 - 1/R)``, algebraically the same as the
formula above, so that R = 1 gives exactly zero gain change.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit

from fxnet.effects._common import as_rows, check_sample_rate, from_rows, knob_rows, physical
from fxnet.knobs import KnobSpec

KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("threshold", -30.0, 0.0, "dB", 0.5, description="level above which gain is reduced"),
    KnobSpec("ratio", 1.0, 5.0, "", 0.5, description="compression ratio (1 = no compression)"),
    KnobSpec("attack", 0.001, 0.040, "s", 0.5, description="10-90 % attack time of the gain smoother"),
    KnobSpec("release", 0.001, 0.040, "s", 0.5, description="10-90 % release time of the gain smoother"),
)

_LN9 = math.log(9.0)
_DB_PER_NEPER = 20.0 / math.log(10.0)  # 20 log10(v) == _DB_PER_NEPER * ln(v)


@njit(cache=True)
def _comp4c_rows(x, threshold_db, ratio, alpha_a, alpha_r, out):  # pragma: no cover - compiled
    rows, n = x.shape
    for r in range(rows):
        t = threshold_db[r]
        slope = 1.0 - 1.0 / ratio[r]
        a_att = alpha_a[r]
        a_rel = alpha_r[r]
        g_prev = 0.0
        for i in range(n):
            xv = x[r, i]
            xdb = _DB_PER_NEPER * math.log(abs(xv) + 1e-8)
            if xdb < -96.0:
                xdb = -96.0
            gc = (t - xdb) * slope if xdb > t else 0.0
            if i == 0:
                g = 0.0
            else:
                a = a_att if gc < g_prev else a_rel
                g = (1.0 - a) * gc + a * g_prev
            out[r, i] = xv if g == 0.0 else xv * math.exp(g / _DB_PER_NEPER)
            g_prev = g


def comp4c(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Compress ``x`` (..., samples) with normalised knobs [threshold, ratio, attack, release].

    Returns float32 of the same shape. ``knobs`` may be (4,) or one set per row (..., 4).
    """
    sr = check_sample_rate(sample_rate)
    rows, shape = as_rows(x)
    k = knob_rows(knobs, KNOBS, shape, "comp4c")
    threshold_db, ratio, attack_s, release_s = physical(KNOBS, k)
    alpha_a = np.exp(-_LN9 / (sr * attack_s))
    alpha_r = np.exp(-_LN9 / (sr * release_s))
    out = np.empty_like(rows)
    _comp4c_rows(rows, threshold_db, ratio, alpha_a, alpha_r, out)
    return from_rows(out, shape)
