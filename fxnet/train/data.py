"""Training data from folders of dry/wet recordings, held in RAM, cropped by vectorised indexing.

Pairing (:func:`discover_pairs`): every audio file of WET_DIR is a processed copy of a dry
file of DRY_DIR. Its knob values come from ``WET_DIR/knobs.csv`` (header ``file,<knob
names...>``, an optional ``dry`` column naming the dry file) or from SignalTrain-style
names (``take1__0.3__0.7.wav`` is ``take1.wav`` at knobs 0.3, 0.7); without either it
is a single-setting capture. The dry file is the csv's ``dry`` entry, else the file of
the same name, else the same stem with any audio extension, else the SignalTrain base
name, else the only file of DRY_DIR (one re-amp signal for every setting).

Knob values are normalised (0-1) unless ``--knob-range name=lo:hi[:unit]`` gives the
knob a physical range; its values are then physical and get normalised.

Crops (:class:`FolderData`): the aligned tracks are padded with zeros (as the streaming
engine pads a file) and concatenated into one float32 buffer per side; a batch is one
fancy-indexing gather of ``left + n + right`` input and ``n`` target samples.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from fxnet.errors import DataError, UsageError
from fxnet.knobs import KnobSpec

AUDIO_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".w64", ".caf", ".rf64", ".mp3")
KNOBS_CSV = "knobs.csv"
#: Share of each track held out for validation when splitting by time.
VALIDATION_SHARE = 0.12
#: Most validation crops kept (evenly spread over the validation audio).
MAX_VALIDATION_CROPS = 256

Split = Literal["auto", "file", "time"]
Direction = Literal["apply", "remove"]


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class CropLayout:
    """Where a training example's input and target lie, from the model's geometry.

    Input: ``left + n + right`` samples starting at ``a``; target: ``n`` samples starting
    at ``a + target_offset`` with ``target_offset = left - latency`` (the model's output
    sample ``i`` belongs to input position ``left + i``, late by ``latency``).
    """

    left: int
    right: int
    latency: int
    n: int
    multiple: int = 1

    @property
    def input_length(self) -> int:
        return self.left + self.n + self.right

    @property
    def target_offset(self) -> int:
        return self.left - self.latency

    @classmethod
    def from_geometry(cls, geometry, segment: int) -> "CropLayout":
        """``segment`` output samples rounded to the geometry's multiple (at least one multiple)."""
        m = max(1, geometry.multiple)
        n = max(m, int(round(segment / m)) * m)
        return cls(geometry.left_context, geometry.right_context, geometry.latency, n, m)


@dataclass
class ValidationSet:
    """Fixed validation examples grouped by knob setting.

    ``inputs`` (M, C, L), ``targets`` (M, C, n), ``knobs`` (M, K) normalised, ``setting``
    (M,) int index into ``settings`` (one tuple of normalised knob values each).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    knobs: torch.Tensor
    setting: torch.Tensor
    settings: list[tuple[float, ...]]


# ---------------------------------------------------------------------------- pairing
@dataclass(frozen=True)
class PairSpec:
    """One wet file, its dry file and its knob values (as given: normalised or physical)."""

    dry: Path
    wet: Path
    knobs: tuple[float, ...] = ()


def parse_knob_range(text: str) -> KnobSpec:
    """``name=lo:hi[:unit]`` -> KnobSpec (e.g. ``threshold=-40:0:dB``)."""
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    try:
        if not sep or not name.strip() or len(parts) not in (2, 3):
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
        if lo == hi:
            raise ValueError
    except ValueError:
        raise UsageError(f"--knob-range expects NAME=LO:HI[:UNIT] with LO != HI, got '{text}'") from None
    unit = parts[2].strip() if len(parts) == 3 else ""
    return KnobSpec(name.strip(), lo, hi, unit)


_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def signaltrain_name(stem: str) -> tuple[str, tuple[float, ...]] | None:
    """``'take1__0.3__0.7'`` -> ``('take1', (0.3, 0.7))``; None when the stem is not of that form."""
    parts = stem.split("__")
    if len(parts) < 2 or not parts[0] or not all(_NUMBER.match(p) for p in parts[1:]):
        return None
    return parts[0], tuple(float(p) for p in parts[1:])


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))


def read_knobs_csv(path: Path) -> tuple[list[str], list[tuple[str, str | None, tuple[float, ...]]]]:
    """Parse knobs.csv -> (knob names, [(wet file, dry file or None, values)])."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path=path) from None
    if not rows:
        raise DataError("is empty; expected a header 'file,<knob names...>'", path=path)
    header = [h.strip() for h in rows[0]]
    if header[0].lower() != "file":
        raise DataError(f"first column must be 'file', got '{header[0]}'", path=path)
    dry_col = next((i for i, h in enumerate(header) if h.lower() == "dry"), None)
    knob_cols = [i for i in range(1, len(header)) if i != dry_col]
    names = [header[i] for i in knob_cols]
    if len(set(names)) != len(names) or any(not n for n in names):
        raise DataError(f"knob names must be unique and non-empty, got {names}", path=path)
    entries = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"line {line} has {len(row)} fields, the header has {len(header)}", path=path)
        try:
            values = tuple(float(row[i]) for i in knob_cols)
        except ValueError:
            raise DataError(f"line {line}: knob values must be numbers, got {row}", path=path) from None
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"line {line}: knob values must be finite", path=path)
        entries.append((row[0].strip(), row[dry_col].strip() if dry_col is not None else None, values))
    if not entries:
        raise DataError("lists no files", path=path)
    return names, entries


def _find_dry(dry_dir: Path, dry_files: list[Path], wet: Path, explicit: str | None) -> Path:
    if explicit:
        p = dry_dir / explicit
        if not p.is_file():
            raise DataError(f"dry file '{explicit}' named in {KNOBS_CSV} is not in {dry_dir}", path=wet)
        return p
    by_name = {p.name: p for p in dry_files}
    if wet.name in by_name:
        return by_name[wet.name]
    by_stem = {p.stem: p for p in dry_files}
    if wet.stem in by_stem:
        return by_stem[wet.stem]
    st = signaltrain_name(wet.stem)
    if st and st[0] in by_stem:
        return by_stem[st[0]]
    if len(dry_files) == 1:
        return dry_files[0]
    raise DataError(
        f"no dry file for it in {dry_dir} (looked for the same name"
        f"{', ' + st[0] + '.*' if st else ''}); name it like the wet file or add a 'dry' column to {KNOBS_CSV}",
        path=wet,
    )


def _knob_specs(names: Sequence[str], ranges: Sequence[KnobSpec]) -> tuple[KnobSpec, ...]:
    by_name = {r.name: r for r in ranges}
    unknown = [r.name for r in ranges if r.name not in names]
    if unknown:
        raise UsageError(f"--knob-range names unknown knob(s) {', '.join(unknown)}; the data's knobs: "
                         f"{', '.join(names) or '(none)'}")
    return tuple(by_name.get(n, KnobSpec(n)) for n in names)


def discover_pairs(
    dry_dir: str | Path, wet_dir: str | Path, *, ranges: Sequence[KnobSpec] = ()
) -> tuple[list[PairSpec], tuple[KnobSpec, ...]]:
    """Pair the wet files with dry files; returns the pairs (knobs normalised) and knob specs."""
    dry_dir, wet_dir = Path(dry_dir), Path(wet_dir)
    for d, what in ((dry_dir, "DRY_DIR"), (wet_dir, "WET_DIR")):
        if not d.is_dir():
            raise DataError(f"{what} is not a directory", path=d)
    dry_files = _audio_files(dry_dir)
    if not dry_files:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)})", path=dry_dir)
    csv_path = wet_dir / KNOBS_CSV
    raw: list[PairSpec] = []
    if csv_path.is_file():
        names, entries = read_knobs_csv(csv_path)
        for wet_name, dry_name, values in entries:
            wet = wet_dir / wet_name
            if not wet.is_file():
                raise DataError(f"lists '{wet_name}', which is not in {wet_dir}", path=csv_path)
            raw.append(PairSpec(_find_dry(dry_dir, dry_files, wet, dry_name), wet, values))
    else:
        wet_files = _audio_files(wet_dir)
        if not wet_files:
            raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)})", path=wet_dir)
        parsed = {w: signaltrain_name(w.stem) for w in wet_files}
        counts = {len(p[1]) if p else 0 for p in parsed.values()}
        if len(counts) > 1:
            raise DataError("wet files disagree on the number of knobs in their names "
                            "(SignalTrain style 'take__0.3__0.7.wav'); name them all alike or use "
                            f"{KNOBS_CSV}", path=wet_dir)
        k = counts.pop()
        range_names = [r.name for r in ranges]
        names = range_names if len(range_names) == k else [f"knob{i + 1}" for i in range(k)]
        for w in wet_files:
            raw.append(PairSpec(_find_dry(dry_dir, dry_files, w, None), w, parsed[w][1] if parsed[w] else ()))
    specs = _knob_specs(names, ranges)
    pairs = []
    for p in raw:
        normalised = []
        for spec, value in zip(specs, p.knobs):
            v = spec.to_normalised(value) if not spec.is_unit_range else value
            if not -1e-6 <= v <= 1 + 1e-6:
                hint = (f"outside its range {spec.minimum:g}..{spec.maximum:g}" if not spec.is_unit_range
                        else f"outside 0-1; give its physical range with --knob-range {spec.name}=LO:HI")
                raise DataError(f"knob '{spec.name}' = {value:g} is {hint}", path=p.wet)
            normalised.append(min(max(v, 0.0), 1.0))
        pairs.append(PairSpec(p.dry, p.wet, tuple(normalised)))
    return pairs, specs


# ---------------------------------------------------------------------------- loading
@dataclass
class PairReport:
    """What loading found about one pair: the measured latency and correlation."""

    dry: str
    wet: str
    knobs: tuple[float, ...]
    lag_samples: int
    correlation: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"dry": self.dry, "wet": self.wet, "knobs": list(self.knobs), "lag_samples": self.lag_samples,
                "correlation": round(self.correlation, 4), "seconds": round(self.seconds, 3)}


@dataclass
class LoadedPair:
    dry: np.ndarray  # (channels, frames) float32, aligned
    wet: np.ndarray
    knobs: tuple[float, ...]
    report: PairReport


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - soundfile raises several types
        raise DataError(f"cannot read audio ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                        path=path) from None
    if data.shape[0] == 0:
        raise DataError("is empty (no samples)", path=path)
    if not np.all(np.isfinite(data)):
        raise DataError("holds NaN or Inf samples", path=path)
    return np.ascontiguousarray(data.T), int(sr)


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    import soxr

    return np.ascontiguousarray(soxr.resample(x.T, rate_in, rate_out, quality="HQ").T.astype(np.float32))


def load_pairs(
    pairs: Sequence[PairSpec], *, sample_rate: int | None = None, max_lag_ms: float = 100.0,
    allow_clipping: bool = False,
) -> tuple[list[LoadedPair], int]:
    """Read, check, resample (to ``sample_rate`` if given) and align every pair.

    Returns the aligned pairs and the sample rate. Raises DataError naming the file(s) for
    a rate or channel mismatch between dry and wet, and for every check of
    :func:`fxnet.train.align.align_pair`.
    """
    from fxnet.train.align import align_pair

    cache: dict[Path, tuple[np.ndarray, int]] = {}
    rates: set[int] = set()
    loaded = []
    for p in pairs:
        if p.dry not in cache:
            cache[p.dry] = _read(p.dry)
        dry, dry_sr = cache[p.dry]
        wet, wet_sr = _read(p.wet)
        if dry_sr != wet_sr:
            raise DataError(f"sample rate {wet_sr} Hz differs from dry file {p.dry} ({dry_sr} Hz); "
                            f"resample one of them", path=p.wet)
        if dry.shape[0] != wet.shape[0]:
            raise DataError(f"has {wet.shape[0]} channel(s) but dry file {p.dry} has {dry.shape[0]}",
                            path=p.wet)
        rates.add(dry_sr)
        target = sample_rate or dry_sr
        if sample_rate is None and len(rates) > 1:
            raise DataError(f"pairs have different sample rates ({', '.join(map(str, sorted(rates)))} Hz); "
                            "pass --sample-rate to resample them all", path=p.wet)
        d, w = _resample(dry, dry_sr, target), _resample(wet, wet_sr, target)
        max_lag = int(round(max_lag_ms * 1e-3 * target))
        d, w, alignment = align_pair(d, w, sample_rate=target, max_lag=max_lag, dry_name=str(p.dry),
                                     wet_name=str(p.wet), allow_clipping=allow_clipping)
        report = PairReport(str(p.dry), str(p.wet), p.knobs, alignment.lag_samples, alignment.correlation,
                            d.shape[-1] / target)
        loaded.append(LoadedPair(np.ascontiguousarray(d), np.ascontiguousarray(w), p.knobs, report))
    return loaded, int(sample_rate or rates.pop())


# ------------------------------------------------------------------------------ crops
@dataclass
class _Tracks:
    """Padded tracks concatenated into (C, total) buffers; valid target starts per track."""

    inputs: torch.Tensor
    targets: torch.Tensor
    knobs: torch.Tensor  # (tracks, K)
    base: np.ndarray  # (tracks,) buffer index of each track's first sample
    valid: np.ndarray  # (tracks,) number of valid target starts
    lengths: np.ndarray  # (tracks,) track lengths in samples


def _pack(tracks: list[tuple[np.ndarray, np.ndarray, tuple[float, ...]]], layout: CropLayout, k: int) -> _Tracks:
    pad_l = max(layout.target_offset, 0)
    pad_r = max(layout.right + layout.latency, 0)
    ins, outs, base, valid, lengths = [], [], [], [], []
    pos = 0
    for x, y, _ in tracks:
        c, n = x.shape
        z_l, z_r = np.zeros((c, pad_l), np.float32), np.zeros((c, pad_r), np.float32)
        ins += [z_l, x, z_r]
        outs += [z_l, y, z_r]
        base.append(pos + pad_l)
        valid.append(max(0, n - layout.n + 1))
        lengths.append(n)
        pos += pad_l + n + pad_r
    knobs = torch.tensor([t[2] for t in tracks], dtype=torch.float32).reshape(len(tracks), k)
    return _Tracks(torch.from_numpy(np.concatenate(ins, axis=1)), torch.from_numpy(np.concatenate(outs, axis=1)),
                   knobs, np.array(base, np.int64), np.array(valid, np.int64), np.array(lengths, np.int64))


def _gather(t: _Tracks, track: np.ndarray, start: np.ndarray, layout: CropLayout) -> tuple[torch.Tensor, ...]:
    """Inputs (B, C, L), targets (B, C, n), knobs (B, K) for target starts ``start`` in ``track``."""
    t0 = torch.from_numpy(t.base[track] + start)  # buffer index of the first target sample
    idx_in = (t0 - layout.target_offset)[:, None] + torch.arange(layout.input_length)
    idx_out = t0[:, None] + torch.arange(layout.n)
    x = t.inputs[:, idx_in].permute(1, 0, 2)
    y = t.targets[:, idx_out].permute(1, 0, 2)
    return x.contiguous(), y.contiguous(), t.knobs[torch.from_numpy(track)]


class FolderData:
    """Aligned dry/wet pairs in RAM, split into training tracks and fixed validation crops.

    ``split``: "file" holds out whole wet files (about 12 %, at least one), "time" the last
    12 % of every pair, "auto" = "file" for 5 or more single-setting pairs, else "time"
    (so that every knob setting is in both sets). A mono model (geometry.channels == 1)
    sees each channel of a file as its own track.
    """

    source = "folders"

    def __init__(
        self, pairs: Sequence[LoadedPair], *, layout: CropLayout, knob_specs: Sequence[KnobSpec],
        sample_rate: int, model_channels: int = 1, direction: Direction = "apply", split: Split = "auto",
        seed: int = 0, dry_dir: str = "", wet_dir: str = "",
    ) -> None:
        if not pairs:
            raise DataError("no pairs to train on")
        self.layout = layout
        self.knob_specs = tuple(knob_specs)
        self.sample_rate = int(sample_rate)
        self.channels = model_channels
        self.direction = direction
        self.reports = [p.report for p in pairs]
        self._dirs = (str(dry_dir), str(wet_dir))
        data_channels = pairs[0].dry.shape[0]
        if model_channels not in (1, data_channels):
            raise DataError(f"the model takes {model_channels} channel(s) but the data has {data_channels}")
        k = len(self.knob_specs)
        if split not in ("auto", "file", "time"):
            raise UsageError(f"--split must be auto, file or time, got '{split}'")
        if split == "auto":
            split = "file" if len(pairs) >= 5 and k == 0 else "time"
        if split == "file" and len(pairs) < 2:
            raise UsageError("--split file needs at least two wet files")
        self.split = split
        held = set()
        if split == "file":
            n_val = max(1, int(round(VALIDATION_SHARE * len(pairs))))
            held = set(np.random.default_rng(seed).choice(len(pairs), n_val, replace=False).tolist())
        train, val = [], []
        for i, p in enumerate(pairs):
            x, y = (p.dry, p.wet) if direction == "apply" else (p.wet, p.dry)
            if split == "file":
                (val if i in held else train).append((x, y, p.knobs))
            else:
                cut = int(round(x.shape[-1] * (1 - VALIDATION_SHARE)))
                train.append((x[:, :cut], y[:, :cut], p.knobs))
                val.append((x[:, cut:], y[:, cut:], p.knobs))
        if model_channels == 1 and data_channels > 1:
            train = [(x[c : c + 1], y[c : c + 1], kn) for x, y, kn in train for c in range(x.shape[0])]
            val = [(x[c : c + 1], y[c : c + 1], kn) for x, y, kn in val for c in range(x.shape[0])]
        self._train = _pack(train, layout, k)
        if self._train.valid.sum() == 0:
            raise DataError(
                f"training audio is shorter than one segment of {layout.n} samples "
                f"({layout.n / sample_rate:.2f} s); use a smaller --segment or longer files"
            )
        self._cum = np.cumsum(self._train.valid)
        self.validation = self._validation(val, k)
        self.train_seconds = float(self._train.lengths.sum() / sample_rate)
        self.samples_per_epoch = int(self._train.lengths.sum())

    def _validation(self, val: list, k: int) -> ValidationSet:
        """Non-overlapping crops of the validation tracks, at most MAX_VALIDATION_CROPS."""
        shortest = min(x.shape[-1] for x, _, _ in val)
        n = self.layout.n
        multiple = self.layout.multiple
        if shortest < n:  # short validation tracks: one crop each, as long as the multiple allows
            n = (shortest // multiple) * multiple
            if n < 1:
                raise DataError(f"validation audio is too short ({shortest} samples); use longer files")
        layout = CropLayout(self.layout.left, self.layout.right, self.layout.latency, n, multiple)
        packed = _pack(val, layout, k)
        tracks, starts = [], []
        for i, length in enumerate(packed.lengths):
            for s in range(0, int(length) - n + 1, n):
                tracks.append(i)
                starts.append(s)
        if len(tracks) > MAX_VALIDATION_CROPS:
            keep = np.linspace(0, len(tracks) - 1, MAX_VALIDATION_CROPS).round().astype(int)
            tracks, starts = [tracks[i] for i in keep], [starts[i] for i in keep]
        x, y, kn = _gather(packed, np.array(tracks, np.int64), np.array(starts, np.int64), layout)
        settings = sorted({tuple(round(float(v), 6) for v in row) for row in kn.tolist()})
        index = {s: i for i, s in enumerate(settings)}
        setting = torch.tensor([index[tuple(round(float(v), 6) for v in row)] for row in kn.tolist()])
        return ValidationSet(x, y, kn, setting, settings)

    def sample(self, batch: int, rng: np.random.Generator, step: int) -> tuple[torch.Tensor, ...]:
        """A random batch: inputs (B, C, L), targets (B, C, n), knobs (B, K)."""
        u = rng.integers(0, int(self._cum[-1]), size=batch)
        track = np.searchsorted(self._cum, u, side="right")
        start = u - (self._cum[track] - self._train.valid[track])
        return _gather(self._train, track, start, self.layout)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_dir": self._dirs[0],
            "wet_dir": self._dirs[1],
            "files": len(self.reports),
            "minutes": round(sum(r.seconds for r in self.reports) / 60.0, 3),
            "train_minutes": round(self.train_seconds / 60.0, 3),
            "split": self.split,
            "pairs": [r.to_dict() for r in self.reports],
        }
