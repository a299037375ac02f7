"""Knob specifications and parsing of knob values given on the command line.

Models see knobs as a float tensor (batch, K) normalised to [0, 1], in the order the
checkpoint declares. Users may give them normalised (``--knobs 0.3,0.7``), by name
(``--knob peak_reduction=0.7``) or in physical units where the spec has a range
(``--knob threshold=-20dB``). In ``--knob``, a value with the knob's unit, or a bare
number inside the knob's physical range, is physical; a bare number outside it but in
[0, 1] is normalised; ``50%`` is half-way through the range.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

from fxnet.errors import KnobError

Scale = Literal["linear", "log"]


@dataclass(frozen=True)
class KnobSpec:
    """One knob: its name, physical range and unit, and its default (normalised)."""

    name: str
    minimum: float = 0.0
    maximum: float = 1.0
    unit: str = ""
    default: float = 0.5
    scale: Scale = "linear"
    steps: int | None = None  #: a switch with 2 positions has steps=2
    description: str = ""

    def to_physical(self, normalised: float) -> float:
        lo, hi = self.minimum, self.maximum
        if self.scale == "log":
            return float(lo * (hi / lo) ** normalised)
        return float(lo + (hi - lo) * normalised)

    def to_normalised(self, physical: float) -> float:
        lo, hi = self.minimum, self.maximum
        if hi == lo:
            return 0.0
        if self.scale == "log":
            return math.log(physical / lo) / math.log(hi / lo)
        return (physical - lo) / (hi - lo)

    @property
    def is_unit_range(self) -> bool:
        return self.minimum == 0.0 and self.maximum == 1.0 and self.scale == "linear"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KnobSpec":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class KnobValues:
    """Resolved, normalised knob values in the model's order."""

    specs: tuple[KnobSpec, ...]
    values: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        return {s.name: v for s, v in zip(self.specs, self.values)}

    def physical(self) -> dict[str, float]:
        return {s.name: s.to_physical(v) for s, v in zip(self.specs, self.values)}


_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)\s*$")
_UNIT_ALIASES = {"db": "dB", "s": "s", "ms": "ms", "%": "%", "hz": "Hz", "khz": "kHz"}


def _valid_list(specs: Sequence[KnobSpec]) -> str:
    if not specs:
        return "this model has no knobs"
    return "valid knobs: " + ", ".join(
        f"{s.name} [{_fmt(s.minimum)}..{_fmt(s.maximum)}{(' ' + s.unit) if s.unit else ''}]"
        for s in specs
    )


def _fmt(x: float) -> str:
    return f"{x:g}"


def _parse_physical(spec: KnobSpec, text: str) -> float:
    """Parse '0.7', '-20dB', '10ms' for this knob; returns a normalised value."""
    m = _NUMBER_UNIT.match(text)
    if not m:
        raise KnobError(f"knob '{spec.name}': cannot read value '{text}'; {_valid_list([spec])}")
    number, unit = float(m.group(1)), m.group(2)
    if unit:
        u = _UNIT_ALIASES.get(unit.lower(), unit)
        if u == "ms" and spec.unit == "s":
            number, u = number / 1000.0, "s"
        elif u == "s" and spec.unit == "ms":
            number, u = number * 1000.0, "ms"
        if u == "%" and spec.unit != "%":
            return _check(spec, number / 100.0, text)
        if u != spec.unit:
            raise KnobError(
                f"knob '{spec.name}' is in {spec.unit or 'normalised units (0-1)'}, not '{unit}'"
            )
        return _check(spec, spec.to_normalised(number), text)
    if spec.is_unit_range:
        return _check(spec, number, text)
    # A bare number is physical when it lies in the knob's physical range, else it is
    # read as normalised (0-1); '%' always means a share of the range.
    lo, hi = sorted((spec.minimum, spec.maximum))
    if lo - 1e-9 <= number <= hi + 1e-9:
        return _check(spec, spec.to_normalised(number), text)
    return _check(spec, number, text)


def _check(spec: KnobSpec, normalised: float, text: str) -> float:
    if not math.isfinite(normalised) or normalised < -1e-9 or normalised > 1 + 1e-9:
        raise KnobError(
            f"knob '{spec.name}' = {text} is out of range; {_valid_list([spec])} (or 0-1 normalised)"
        )
    normalised = min(max(normalised, 0.0), 1.0)
    if spec.steps and spec.steps > 1:
        normalised = round(normalised * (spec.steps - 1)) / (spec.steps - 1)
    return normalised


def resolve_knobs(
    specs: Sequence[KnobSpec],
    positional: str | None = None,
    named: Sequence[str] = (),
) -> KnobValues:
    """Combine ``--knobs a,b,c`` and repeated ``--knob name=value`` into normalised values.

    Missing knobs take their defaults. Raises KnobError listing the valid knobs for an
    unknown name, a wrong count or an out-of-range value.
    """
    specs = tuple(specs)
    values: list[float | None] = [None] * len(specs)
    if positional is not None and positional.strip() != "":
        parts = [p.strip() for p in positional.split(",")]
        if len(parts) > len(specs):
            raise KnobError(
                f"--knobs got {len(parts)} values but the model has {len(specs)} knob(s); {_valid_list(specs)}"
            )
        for i, part in enumerate(parts):
            if part == "":
                continue
            try:
                number = float(part)
            except ValueError:
                raise KnobError(
                    f"--knobs value '{part}' is not a number (use --knob NAME=VALUE for units); {_valid_list(specs)}"
                ) from None
            values[i] = _check(specs[i], number, part)
    index = {s.name: i for i, s in enumerate(specs)}
    for item in named:
        if "=" not in item:
            raise KnobError(f"--knob expects NAME=VALUE, got '{item}'; {_valid_list(specs)}")
        name, text = (t.strip() for t in item.split("=", 1))
        if name not in index:
            raise KnobError(f"unknown knob '{name}'; {_valid_list(specs)}")
        values[index[name]] = _parse_physical(specs[index[name]], text)
    return KnobValues(specs, [s.default if v is None else v for s, v in zip(specs, values)])


def load_automation(path: str, base: KnobValues):
    """Knob automation from a CSV: ``time,<knob>,<knob>...`` (time in seconds, increasing).

    Cells follow ``--knob``'s rules (physical with or without unit, or normalised).
    Knobs without a column keep ``base``'s values. Between rows values are interpolated
    linearly; before the first and after the last row they are held. Returns a function
    of time (seconds) giving every knob's normalised value, for the streaming engine.
    """
    import csv

    import numpy as np

    specs = base.specs
    index = {s.name: i for i, s in enumerate(specs)}
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and not r[0].lstrip().startswith("#")]
    except OSError as e:
        raise KnobError(f"{path}: cannot read knob automation ({e.strerror or e})") from None
    if len(rows) < 2 or rows[0][0].strip().lower() != "time":
        raise KnobError(f"{path}: knob automation needs a header 'time,<knob>,...' and at least one row")
    names = [c.strip() for c in rows[0][1:]]
    for name in names:
        if name not in index:
            raise KnobError(f"{path}: unknown knob '{name}'; {_valid_list(specs)}")
    times, table = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(names) + 1:
            raise KnobError(f"{path}: line {line} has {len(row)} cells, the header {len(names) + 1}")
        try:
            times.append(float(row[0]))
        except ValueError:
            raise KnobError(f"{path}: line {line}: time '{row[0]}' is not a number of seconds") from None
        try:
            table.append([_parse_physical(specs[index[n]], cell.strip()) for n, cell in zip(names, row[1:])])
        except KnobError as e:
            raise KnobError(f"{path}: line {line}: {e}") from None
    t = np.asarray(times)
    if np.any(np.diff(t) <= 0):
        raise KnobError(f"{path}: times must increase from row to row")
    columns = np.asarray(table, dtype=np.float64).T  # (len(names), rows)
    cols = [index[n] for n in names]
    steps = [specs[i].steps for i in cols]

    def at(seconds: float) -> list[float]:
        values = list(base.values)
        for j, i in enumerate(cols):
            v = float(np.interp(seconds, t, columns[j]))
            if steps[j] and steps[j] > 1:  # a switch jumps, it does not glide
                v = round(v * (steps[j] - 1)) / (steps[j] - 1)
            values[i] = v
        return values

    return at
