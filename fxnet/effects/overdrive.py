"""SoX's ``overdrive`` effect (sox 14.4.2, src/overdrive.c), the paper's Eq. 6.

With gain G (dB) and colour C (0-100), per channel and starting from zero state::

    g = 10^(G/20);  c = C / 200
    d[n] = g x[n] + c
    s[n] = -2/3 if d < -1;  2/3 if d > 1;  d - d^3/3 otherwise        (soft clip, Eq. 5)
    y_dc[n] = s[n] - s[n-1] + 0.995 y_dc[n-1]                            (DC blocker)
    out[n] = clip(0.5 x[n] + 0.75 y_dc[n], -1, 1)                        (sox's output clip)

As in sox 14.4.2, G = 0 dB is a null effect whatever the colour: the input passes
through unchanged (sox reports "has no effect in this configuration" and drops it).
The kernel follows sox's operation order in float64 and matches the real ``sox`` binary
to float32 rounding (tests/test_effects.py runs it). The effect does not depend on the
sample rate, as in sox. The knob range stops at 50 dB gain (the paper's CEG-OD set used
20-50 dB); :func:`sox_overdrive` takes sox's full 0-100 dB.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit

from fxnet.effects._common import as_rows, check_sample_rate, from_rows, knob_rows, physical
from fxnet.knobs import KnobSpec

#: SoX's fixed output mix ``DRY x + WET y_dc`` and DC-blocker pole (src/overdrive.c);
#: fxnet.restore.overdrive inverts the effect with the same constants.
DRY = 0.5
WET = 0.75
POLE = 0.995

KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec("gain_db", 0.0, 50.0, "dB", 0.4, description="drive into the soft clipper (sox: 20)"),
    KnobSpec("colour", 0.0, 100.0, "%", 0.2, description="offset before the clipper: even harmonics (sox: 20)"),
)


@njit(cache=True)
def _overdrive_rows(x, gain, colour, out):  # pragma: no cover - compiled
    rows, n = x.shape
    for r in range(rows):
        g = gain[r]
        c = colour[r]
        if g == 1.0:  # sox: 0 dB gain -> SOX_EFF_NULL, even with colour
            for i in range(n):
                out[r, i] = x[r, i]
            continue
        last_in = 0.0
        last_out = 0.0
        for i in range(n):
            d0 = x[r, i]
            d = d0 * g + c
            if d < -1.0:
                d = -2.0 / 3.0
            elif d > 1.0:
                d = 2.0 / 3.0
            else:
                d = d - d * d * d * (1.0 / 3.0)
            last_out = d - last_in + POLE * last_out
            last_in = d
            y = d0 * DRY + last_out * WET
            out[r, i] = -1.0 if y < -1.0 else (1.0 if y > 1.0 else y)


def sox_overdrive(
    x: np.ndarray, gain_db: float | np.ndarray = 20.0, colour: float | np.ndarray = 20.0
) -> np.ndarray:
    """sox ``overdrive gain_db colour`` on ``x`` (..., samples) with physical parameters.

    ``gain_db`` (0-100 in sox) and ``colour`` (0-100) are scalars or broadcast to
    x.shape[:-1]. Returns float32 of x's shape.
    """
    rows, shape = as_rows(x)
    n_rows = rows.shape[0]
    gain_db = np.broadcast_to(np.asarray(gain_db, dtype=np.float64), shape[:-1]).reshape(n_rows)
    colour = np.broadcast_to(np.asarray(colour, dtype=np.float64), shape[:-1]).reshape(n_rows)
    out = np.empty_like(rows)
    gain = np.ascontiguousarray(10.0 ** (gain_db / 20.0))
    _overdrive_rows(rows, gain, np.ascontiguousarray(colour / 200.0), out)
    return from_rows(out, shape)


def overdrive(x: np.ndarray, sample_rate: int, knobs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Overdrive ``x`` (..., samples) with normalised knobs [gain_db, colour]; float32 out."""
    check_sample_rate(sample_rate)
    _, shape = as_rows(x)
    k = knob_rows(knobs, KNOBS, shape, "overdrive")
    gain_db, colour = physical(KNOBS, k)
    return sox_overdrive(x, gain_db.reshape(shape[:-1]), colour.reshape(shape[:-1]))
