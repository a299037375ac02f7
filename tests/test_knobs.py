"""Knob parsing: normalised lists, names, physical units, clear errors."""

from __future__ import annotations

import pytest

from fxnet.errors import KnobError
from fxnet.knobs import KnobSpec, resolve_knobs

SPECS = (
    KnobSpec("threshold", -30, 0, "dB", default=0.5),
    KnobSpec("ratio", 1, 5, "", default=0.25),
    KnobSpec("attack", 0.001, 0.040, "s", default=0.1),
    KnobSpec("limit", 0, 1, "", default=0.0, steps=2),
)


def test_positional_and_defaults():
    v = resolve_knobs(SPECS, "0.3,0.7")
    assert v.values == [0.3, 0.7, 0.1, 0.0]


def test_named_physical_units():
    v = resolve_knobs(SPECS, None, ["threshold=-20dB", "attack=10ms", "ratio=3", "limit=1"])
    assert v.values[0] == pytest.approx(1 / 3)
    assert v.values[1] == pytest.approx(0.5)  # ratio 3 in [1, 5]
    assert v.values[2] == pytest.approx((0.010 - 0.001) / 0.039)
    assert v.values[3] == 1.0
    assert v.physical()["threshold"] == pytest.approx(-20.0)


def test_switch_snaps_to_positions():
    assert resolve_knobs(SPECS, ",,,0.8").values[3] == 1.0


@pytest.mark.parametrize("positional,named,message", [
    ("0.1,0.2,0.3,0.4,0.5", [], "got 5 values but the model has 4 knob"),
    ("1.5", [], "out of range"),
    ("abc", [], "not a number"),
    (None, ["depth=0.3"], "unknown knob 'depth'; valid knobs: threshold"),
    (None, ["threshold=-40dB"], "out of range"),
    (None, ["threshold=3ms"], "is in dB, not 'ms'"),
    (None, ["threshold"], "expects NAME=VALUE"),
])
def test_errors_list_valid_knobs(positional, named, message):
    with pytest.raises(KnobError, match=message):
        resolve_knobs(SPECS, positional, named)


def test_log_scale_round_trip():
    k = KnobSpec("freq", 20, 20000, "Hz", scale="log")
    assert k.to_physical(k.to_normalised(632.0)) == pytest.approx(632.0)
    assert k.to_physical(0.5) == pytest.approx(632.4555, rel=1e-5)
