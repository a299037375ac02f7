"""Paper-style figures of evaluation results, written atomically as PNG.

* :func:`boxplot`: one panel per metric, one box per method (median line, box from the
  first to the third quartile, whiskers to the furthest point within 1.5 IQR, outliers
  as dots), as in paper 001 (Imort et al. 2022), Figs. 2-4.
* :func:`sweep_plot`: a score against a swept variable (e.g. input SDR), one line per
  method: the mean with a shaded 95 % confidence band from Student's t-interval of the
  mean (mean ± t_{0.975, n-1} · s / sqrt(n)), optionally with the unprocessed input's
  score as a black dashed line, as in paper 001, Fig. 5.

matplotlib is imported only here and only when a plot is made; figures are drawn with the
Agg canvas directly (no pyplot, no global backend switch, safe in threads and servers).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fxnet.errors import OutputError, UsageError

__all__ = ["boxplot", "confidence_interval", "sweep_plot"]

#: Confidence level of the bands in sweep_plot.
CONFIDENCE = 0.95


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(list(values), dtype=np.float64)
    return v[np.isfinite(v)]


def confidence_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): Student's t-interval of the mean of the finite values.

    One value gives a zero-width interval; no value gives NaNs.
    """
    from scipy import stats

    v = _finite(values)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2.0, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def _label(metric: str) -> str:
    from fxnet.metrics import METRICS

    m = METRICS.get(metric)
    if m is None:
        return metric
    unit = f" [{m.unit}]" if m.unit else ""
    return f"{metric}{unit} {'↑' if m.higher_is_better else '↓'}"


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG to a temporary file beside ``path``, then rename it into place."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError("directory does not exist", path=directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".fxnet-partial", dir=directory)
    except OSError as e:
        raise OutputError(f"cannot write the plot ({e.strerror or e})", path=target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=fig.dpi)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def boxplot(results: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, *,
            metrics: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Box plots per metric, methods side by side: ``results[method][metric] = values``.

    ``metrics`` chooses and orders the panels (default: every metric, in first-seen
    order). Non-finite values are left out; a method without values for a metric gets
    no box there. Returns the path written.
    """
    methods = list(results)
    if not methods:
        raise UsageError("boxplot: no results to plot")
    names = list(metrics) if metrics is not None else list(dict.fromkeys(m for r in results.values() for m in r))
    if not names:
        raise UsageError("boxplot: no metrics to plot")
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig = _figure(max(3.2 * cols, 0.8 * len(methods) * cols), 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    colours = [f"C{i % 10}" for i in range(len(methods))]
    for ax, metric in zip(axes.flat, names):
        data, positions, used = [], [], []
        for i, method in enumerate(methods):
            v = _finite(results[method].get(metric, []))
            if v.size:
                data.append(v)
                positions.append(i)
                used.append(i)
        if data:
            parts = ax.boxplot(data, positions=positions, widths=0.6, patch_artist=True,
                               medianprops={"color": "black"}, flierprops={"markersize": 3})
            for patch, i in zip(parts["boxes"], used):
                patch.set_facecolor(colours[i])
                patch.set_alpha(0.6)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=30 if len(methods) > 3 else 0, ha="right" if len(methods) > 3 else "center")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_title(_label(metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def sweep_plot(results: Mapping[str, Mapping[float, Sequence[float]]], path: str | Path, xlabel: str, ylabel: str,
               *, baseline: Mapping[float, Sequence[float]] | None = None, baseline_label: str = "input",
               title: str | None = None) -> Path:
    """Mean score vs a swept value per method, with 95 % t-interval bands of the mean.

    ``results[method][x] = scores at x``; ``baseline`` (e.g. the distorted input's
    scores) is drawn as a black dashed line. Returns the path written.
    """
    if not results:
        raise UsageError("sweep_plot: no results to plot")
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    for i, (method, by_x) in enumerate(results.items()):
        xs = sorted(by_x)
        stats = np.array([confidence_interval(by_x[x]) for x in xs]).reshape(-1, 3)
        colour = f"C{i % 10}"
        ax.plot(xs, stats[:, 0], marker="o", markersize=3, color=colour, label=method)
        ax.fill_between(xs, stats[:, 1], stats[:, 2], color=colour, alpha=0.2, linewidth=0)
    if baseline:
        xs = sorted(baseline)
        ax.plot(xs, [confidence_interval(baseline[x])[0] for x in xs], "k--", label=baseline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)
