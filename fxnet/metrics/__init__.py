"""Evaluation metrics: a registry of names, and one call that scores an estimate against a reference.

Every *pair* metric has the call shape ``metric(est, ref, sample_rate) -> float`` with
``est`` and ``ref`` float arrays of the same shape, ``(samples,)`` or ``(channels,
samples)``. *Set* metrics (FAD) compare a whole set of estimates with a set of
references. Modules are imported only when a metric is first used, so asking for
``si_sdr`` never loads the embedding model of ``fad``::

    from fxnet.metrics import compute, METRICS
    scores = compute(["si_sdr", "rnonlin"], est, ref, 44100)  # {"si_sdr": 12.3, "rnonlin": 0.97}
    METRICS["si_sdr"].higher_is_better, METRICS["si_sdr"].unit  # True, "dB"

``peaq`` lives in ``fxnet/metrics/peaq.py`` (``odg(test, ref, sample_rate)``); when that
module is absent or broken, using the metric raises :class:`MetricUnavailableError`.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from fxnet.errors import UsageError

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "Metric",
    "MetricUnavailableError",
    "compute",
    "get_metric",
    "parse_metric_names",
]


class MetricUnavailableError(UsageError):
    """A registered metric whose implementation cannot be imported (e.g. peaq.py missing)."""


@dataclass(frozen=True)
class Metric:
    """One registry entry: where the function lives and how to read its values."""

    name: str
    module: str
    function: str
    higher_is_better: bool
    unit: str  #: "dB", "LU", "ODG", or "" for unitless
    description: str
    citation: str
    kind: Literal["pair", "set"] = "pair"
    takes_rate: bool = True  #: whether the function takes the sample rate as third argument

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def load(self) -> Callable[..., float]:
        """Import the implementation; MetricUnavailableError names what is missing."""
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            if e.name == self.module:
                raise MetricUnavailableError(
                    f"metric '{self.name}' is not available: its module {self.module} is not installed"
                ) from None
            raise MetricUnavailableError(
                f"metric '{self.name}' is not available: importing {self.module} failed ({e})"
            ) from None
        except ImportError as e:
            raise MetricUnavailableError(
                f"metric '{self.name}' is not available: importing {self.module} failed ({e})"
            ) from None
        function = getattr(module, self.function, None)
        if not callable(function):
            raise MetricUnavailableError(
                f"metric '{self.name}' is not available: {self.module} has no function '{self.function}'"
            )
        return function

    def __call__(self, est: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
        if self.kind != "pair":
            raise UsageError(f"'{self.name}' is a set metric: it compares whole sets of files, not one pair")
        function = self.load()
        return float(function(est, ref, sample_rate) if self.takes_rate else function(est, ref))

    @property
    def doc(self) -> str:
        """The implementation's docstring (imports the module)."""
        return (self.load().__doc__ or "").strip()


_ENTRIES = (
    Metric("si_sdr", "fxnet.metrics.basic", "si_sdr", True, "dB",
           "scale-invariant SDR, no mean removal; per channel, averaged",
           "J. Le Roux, S. Wisdom, H. Erdogan, J. R. Hershey, 'SDR - half-baked or well done?', ICASSP 2019",
           takes_rate=False),
    Metric("sdr", "fxnet.metrics.basic", "sdr", True, "dB",
           "plain SDR 10 log10(|ref|^2 / |ref - est|^2); per channel, averaged",
           "Závišká, Rajmic, Ozerov, Rencker, 'A survey and an extensive evaluation of popular audio "
           "declipping methods', IEEE JSTSP 2021 (as SDR_inp/SDR_out)",
           takes_rate=False),
    Metric("esr", "fxnet.metrics.basic", "esr", False, "",
           "error-to-signal ratio sum (ref - est)^2 / sum ref^2, pooled over channels",
           "A. Wright, E.-P. Damskägg, V. Välimäki, 'Real-time black-box modelling with recurrent neural "
           "networks', DAFx 2019",
           takes_rate=False),
    Metric("l1", "fxnet.metrics.basic", "l1", False, "",
           "mean absolute sample error (full scale = 1)", "-", takes_rate=False),
    Metric("mrstft", "fxnet.metrics.basic", "mrstft", False, "",
           "multi-resolution STFT distance (spectral convergence + log magnitude; FFT 1024/2048/512)",
           "R. Yamamoto, E. Song, J.-M. Kim, 'Parallel WaveGAN', ICASSP 2020; C. Steinmetz, auraloss",
           takes_rate=False),
    Metric("lufs_diff", "fxnet.metrics.loudness", "lufs_diff", False, "LU",
           "absolute difference of integrated loudness (K-weighted, gated)",
           "ITU-R BS.1770-4 (2015); EBU Tech 3341"),
    Metric("rnonlin", "fxnet.metrics.rnonlin", "rnonlin", True, "",
           "R_nonlin: gammatone-band cross-correlation, 1 = no nonlinear distortion",
           "C.-T. Tan, B. C. J. Moore, N. Zacharov, V.-V. Mattila, 'Predicting the perceived quality of "
           "nonlinearly distorted music and speech signals', JAES 52(7/8), 2004"),
    Metric("peaq", "fxnet.metrics.peaq", "odg", True, "ODG",
           "PEAQ basic version objective difference grade, 0 (imperceptible) to -4 (very annoying)",
           "ITU-R BS.1387-1 (2001); T. Thiede et al., 'PEAQ - the ITU standard for objective measurement "
           "of perceived audio quality', JAES 48(1/2), 2000"),
    Metric("fad", "fxnet.metrics.fad", "fad", False, "",
           "Fréchet audio distance between the embedding distributions of two sets of files",
           "K. Kilgour, M. Zuluaga, D. Roblek, M. Sharifi, 'Fréchet Audio Distance: a reference-free metric "
           "for evaluating music enhancement algorithms', Interspeech 2019",
           kind="set"),
)

#: Metric name -> entry, in display order.
METRICS: dict[str, Metric] = {m.name: m for m in _ENTRIES}
#: What `fxnet eval` computes when --metrics is not given: every pair metric.
DEFAULT_METRICS: tuple[str, ...] = tuple(m.name for m in _ENTRIES if m.kind == "pair")


def get_metric(name: str) -> Metric:
    """The registry entry for ``name``; UsageError listing the known names otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise UsageError(f"unknown metric '{name}'; known metrics: {', '.join(METRICS)}") from None


def parse_metric_names(spec: str | Sequence[str] | None) -> list[str]:
    """``"si_sdr,esr"`` (or a list) -> checked, de-duplicated names; None -> the defaults."""
    if spec is None:
        return list(DEFAULT_METRICS)
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        get_metric(part)
        if part not in names:
            names.append(part)
    if not names:
        raise UsageError("--metrics names no metric; known metrics: " + ", ".join(METRICS))
    return names


def compute(names: Sequence[str], est: np.ndarray, ref: np.ndarray, sample_rate: int, *,
            timings: dict[str, float] | None = None) -> dict[str, float]:
    """Score ``est`` against ``ref`` with every named pair metric: {name: value}.

    ``est`` and ``ref``: the same shape, (samples,) or (channels, samples). Errors are not
    caught (see :mod:`fxnet.metrics.evaluate` for a batch that goes on past them). When
    ``timings`` is given, each metric's wall time in seconds is added to it.
    """
    metrics = [get_metric(n) for n in names]
    for m in metrics:
        if m.kind != "pair":
            raise UsageError(f"'{m.name}' is a set metric: it compares whole sets of files, not one pair")
    e, r = np.asarray(est), np.asarray(ref)
    if e.shape != r.shape:
        raise UsageError(f"estimate and reference shapes differ: {e.shape} vs {r.shape}")
    scores: dict[str, float] = {}
    for m in metrics:
        t0 = time.perf_counter()
        scores[m.name] = m(e, r, sample_rate)
        if timings is not None:
            timings[m.name] = timings.get(m.name, 0.0) + time.perf_counter() - t0
    return scores


def describe(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """JSON-ready descriptions of the named metrics (default: all), without importing them."""
    chosen: Mapping[str, Metric] = METRICS if names is None else {n: get_metric(n) for n in names}
    return [{"name": m.name, "unit": m.unit, "higher_is_better": m.higher_is_better, "kind": m.kind,
             "description": m.description, "citation": m.citation} for m in chosen.values()]
