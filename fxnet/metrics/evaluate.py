"""Score folders of estimates against references: pairing, loading, metrics, aggregates.

The library behind ``fxnet eval`` (and ``bench/bench_eval.py``):

* :func:`pair_files` matches estimates to references by file-name stem (after removing
  an optional suffix such as ``.fx``) and lists what stayed unpaired.
* :func:`load_pair` reads both files, resamples them to a common rate with soxr (the
  reference's, unless a rate is given), mixes a stereo file to mono when the other is
  mono, and trims both to the shorter length, warning when they differ by more than
  :data:`LENGTH_TOLERANCE_SECONDS`.
* :func:`testset_pairs` pairs a test set's ``input/`` and ``target/`` folders (the
  layout ``fxnet eval --model NAME --testset DIR`` reads).
* :func:`evaluate` scores every pair with the pair metrics, going on past bad files and
  failing metrics, and gathers embeddings for FAD on the way.
* :func:`summarize` gives median, quartiles and mean per metric.

Multichannel audio goes to every metric as (channels, samples); each metric's docstring
says how it treats channels (ratios in dB per channel then averaged; energy ratios and
distances pooled; loudness by BS.1770 channel summation).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fxnet.errors import FxnetError, UsageError
from fxnet.metrics import compute, get_metric

__all__ = ["LENGTH_TOLERANCE_SECONDS", "Pair", "PairResult", "Pairing", "evaluate", "load_pair", "pair_files",
           "summarize", "testset_pairs"]

#: Lengths differing by more than this (in seconds) get a warning before trimming.
LENGTH_TOLERANCE_SECONDS = 0.005


@dataclass(frozen=True)
class Pair:
    """An estimate and the reference it is scored against; ``name`` is the shared stem."""

    name: str
    est: str
    ref: str


@dataclass
class Pairing:
    pairs: list[Pair]
    est_only: list[str] = field(default_factory=list)
    ref_only: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  #: ambiguous names (two files, one stem)


@dataclass
class PairResult:
    """The scores of one pair; ``error`` set when the pair could not be scored at all."""

    pair: Pair
    scores: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  #: per-metric failures (value NaN)
    error: str | None = None
    seconds: float = 0.0
    sample_rate: int = 0
    channels: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.pair.name, "est": self.pair.est, "ref": self.pair.ref,
                "scores": {k: _json_number(v) for k, v in self.scores.items()},
                "seconds": round(self.seconds, 6), "sample_rate": self.sample_rate, "channels": self.channels,
                "warnings": self.warnings, "errors": self.errors + ([self.error] if self.error else [])}


def _json_number(value: float) -> float | None:
    """JSON has no NaN/Infinity: non-finite values become null."""
    return float(value) if value is not None and math.isfinite(value) else None


# --- pairing -----------------------------------------------------------------------------


def _audio_files(folder: Path) -> list[Path]:
    from fxnet.batch import AUDIO_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def pair_files(est: str | Path, ref: str | Path, *, suffix: str = "") -> Pairing:
    """Pair two files, or the audio files of two folders by stem (not recursive).

    In folders, an estimate named ``{stem}{suffix}.ext`` pairs with the reference
    ``{stem}.ext`` (any audio extension on either side). Raises UsageError when a path
    is missing, when a file is paired with a folder, or when nothing pairs up.
    """
    est_p, ref_p = Path(est), Path(ref)
    for p, role in ((est_p, "estimate"), (ref_p, "reference")):
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory ({role})")
    if est_p.is_file() and ref_p.is_file():
        return Pairing([Pair(ref_p.stem, str(est_p), str(ref_p))])
    if est_p.is_dir() != ref_p.is_dir():
        raise UsageError(f"{est_p} and {ref_p}: give two files or two folders, not one of each")
    pairing = Pairing([])

    def by_stem(files: list[Path], strip: str) -> dict[str, Path]:
        table: dict[str, list[Path]] = defaultdict(list)
        for f in files:
            stem = f.stem
            if strip and stem.endswith(strip):
                stem = stem[: -len(strip)]
            table[stem].append(f)
        out = {}
        for stem, found in table.items():
            if len(found) > 1:
                pairing.errors.append(f"{', '.join(map(str, found))}: several files share the name '{stem}'; "
                                      "keep one per name")
            else:
                out[stem] = found[0]
        return out

    est_files, ref_files = by_stem(_audio_files(est_p), suffix), by_stem(_audio_files(ref_p), "")
    for stem in sorted(est_files.keys() | ref_files.keys()):
        if stem in est_files and stem in ref_files:
            pairing.pairs.append(Pair(stem, str(est_files[stem]), str(ref_files[stem])))
        elif stem in est_files:
            pairing.est_only.append(str(est_files[stem]))
        else:
            pairing.ref_only.append(str(ref_files[stem]))
    if not pairing.pairs and not pairing.errors:
        raise UsageError(f"{est_p} and {ref_p}: no audio file names in common"
                         + (f" (after removing the suffix '{suffix}')" if suffix else ""))
    return pairing


def testset_pairs(root: str | Path, *, suffix: str = "") -> Pairing:
    """Pair ``root/input/*`` (what a model is given) with ``root/target/*`` (what it should give).

    The audio files of the two folders pair by stem as in :func:`pair_files` (``suffix``
    is removed from the input names). Raises UsageError when ``root``, ``input/`` or
    ``target/`` is missing, when either folder holds no audio file, or when no name pairs.
    """
    base = Path(root)
    if not base.is_dir():
        raise UsageError(f"{base}: no such test-set directory (expected {base}/input/ and {base}/target/)")
    for sub in ("input", "target"):
        folder = base / sub
        if not folder.is_dir():
            raise UsageError(f"{folder}: missing; a test set holds input/ and target/ folders of audio files "
                             "paired by name")
        if not _audio_files(folder):
            raise UsageError(f"{folder}: no audio files (.wav, .flac, ...) in this folder")
    return pair_files(base / "input", base / "target", suffix=suffix)


# --- loading -------------------------------------------------------------------------------


def _read(path: str) -> tuple[np.ndarray, int]:
    from fxnet.audio import read_audio

    audio, rate = read_audio(path)
    return audio.numpy(), rate


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    import soxr

    return np.ascontiguousarray(soxr.resample(x.T, rate_in, rate_out, quality="HQ").T)


def load_pair(pair: Pair, *, rate: int | None = None) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Read a pair as float32 (channels, samples) arrays at one rate; returns (est, ref, rate, warnings).

    Raises AudioError (from the reader) for unreadable files and UsageError when the
    channel counts cannot be reconciled.
    """
    warnings: list[str] = []
    est, est_rate = _read(pair.est)
    ref, ref_rate = _read(pair.ref)
    target = rate or ref_rate
    if est_rate != target or ref_rate != target:
        changed = [f"{role} {r} Hz" for role, r in (("estimate", est_rate), ("reference", ref_rate)) if r != target]
        warnings.append(f"resampled {' and '.join(changed)} to {target} Hz")
    est, ref = _resample(est, est_rate, target), _resample(ref, ref_rate, target)
    if est.shape[0] != ref.shape[0]:
        if min(est.shape[0], ref.shape[0]) != 1:
            raise UsageError(f"{pair.est}: has {est.shape[0]} channels but its reference {pair.ref} has "
                             f"{ref.shape[0]}")
        warnings.append(f"estimate has {est.shape[0]} channel(s), reference {ref.shape[0]}: scored in mono")
        est, ref = est.mean(axis=0, keepdims=True), ref.mean(axis=0, keepdims=True)
    n_est, n_ref = est.shape[-1], ref.shape[-1]
    if n_est != n_ref:
        if abs(n_est - n_ref) > LENGTH_TOLERANCE_SECONDS * target:
            warnings.append(f"lengths differ by {abs(n_est - n_ref) / target * 1000:.1f} ms (estimate "
                            f"{n_est / target:.3f} s, reference {n_ref / target:.3f} s): trimmed to the shorter")
        n = min(n_est, n_ref)
        est, ref = est[:, :n], ref[:, :n]
    return est, ref, target, warnings


# --- scoring -------------------------------------------------------------------------------


@dataclass
class SetCollector:
    """Embeddings gathered per pair for a set metric (FAD): estimates and references."""

    embedding: Any
    est: list[np.ndarray] = field(default_factory=list)
    ref: list[np.ndarray] = field(default_factory=list)


def evaluate(pairs: Sequence[Pair], metrics: Sequence[str], *, rate: int | None = None,
             fad_embedding: Any = None, timings: dict[str, float] | None = None,
             on_result: Callable[[PairResult], None] | None = None,
             set_errors: list[str] | None = None) -> tuple[list[PairResult], dict[str, float]]:
    """Score every pair; returns (per-pair results, set-metric values).

    A pair that cannot be loaded gets ``error``; a metric that fails on a pair gets NaN
    and a line in ``errors``; either way the batch goes on. ``fad`` among ``metrics``
    embeds every loaded estimate and reference with ``fad_embedding`` (default: the
    offline log-mel embedding) and returns the FAD between the two sets; when it cannot
    be computed (too few embedding vectors) it is NaN and the reason goes to
    ``set_errors``. ``timings`` accumulates wall seconds per metric plus ``"load"``.
    """
    pair_metrics = [m for m in metrics if get_metric(m).kind == "pair"]
    set_metrics = [m for m in metrics if get_metric(m).kind == "set"]
    collector = None
    if "fad" in set_metrics:
        from fxnet.metrics.fad import LogMelStatsEmbedding

        collector = SetCollector(fad_embedding or LogMelStatsEmbedding())
    timings = timings if timings is not None else {}
    results: list[PairResult] = []
    for pair in pairs:
        result = PairResult(pair)
        t0 = time.perf_counter()
        try:
            est, ref, sr, result.warnings = load_pair(pair, rate=rate)
        except FxnetError as e:
            result.error = str(e)
            results.append(result)
            if on_result:
                on_result(result)
            continue
        finally:
            timings["load"] = timings.get("load", 0.0) + time.perf_counter() - t0
        result.seconds, result.sample_rate, result.channels = est.shape[-1] / sr, sr, est.shape[0]
        for name in pair_metrics:
            try:
                result.scores.update(compute([name], est, ref, sr, timings=timings))
            except Exception as e:  # noqa: BLE001 - one failing metric must not stop the batch
                result.scores[name] = math.nan
                text = str(e).splitlines()[0] if str(e).strip() else ""
                result.errors.append(f"{pair.est}: {name} failed ({type(e).__name__}: {text})"
                                     if not isinstance(e, FxnetError) else f"{pair.est}: {name}: {text}")
        if collector is not None:
            from fxnet.metrics.fad import embed

            t1 = time.perf_counter()
            collector.est.append(embed(est, sr, collector.embedding))
            collector.ref.append(embed(ref, sr, collector.embedding))
            timings["fad"] = timings.get("fad", 0.0) + time.perf_counter() - t1
        results.append(result)
        if on_result:
            on_result(result)
    set_values: dict[str, float] = {}
    if collector is not None:
        from fxnet.metrics.fad import fad_from_embeddings

        t1 = time.perf_counter()
        try:
            if not collector.est:
                raise UsageError("no pair could be read")
            set_values["fad"] = fad_from_embeddings(collector.est, collector.ref)
        except FxnetError as e:
            set_values["fad"] = math.nan
            if set_errors is not None:
                set_errors.append(f"fad: {e}")
        timings["fad"] = timings.get("fad", 0.0) + time.perf_counter() - t1
    return results, set_values


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, first and third quartile, mean and count of the non-NaN values.

    Infinite values (e.g. SDR of an exact copy) take part; quartiles that would mix
    +inf and -inf fall back to the nearest sample. ``n`` counts the values used.
    """
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"median": None, "q1": None, "q3": None, "mean": None, "n": 0}
    with np.errstate(invalid="ignore"):
        q = np.quantile(v, [0.25, 0.5, 0.75])
        if np.any(np.isnan(q)):
            q = np.quantile(v, [0.25, 0.5, 0.75], method="nearest")
        mean = float(np.mean(v))
    return {"median": float(q[1]), "q1": float(q[0]), "q3": float(q[2]), "mean": mean, "n": int(v.size)}
