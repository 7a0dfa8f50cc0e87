"""Figures drawn from what a run already wrote: ``results.json``, the prediction CSVs, the bench report.

People judge an IQA model from pictures as much as from tables: whether its predictions follow the MOS or
saturate, where it sits between accuracy and cost. Each drawing function here takes that data and a target path,
saves a PNG (unless the path is None) and returns the matplotlib Figure, so a leaderboard can be restyled without
re-running a model, a notebook can show it, and a test can read the plotted data back from the artists. Nothing
here loads a model.

Rendering is deterministic: matplotlib's default style with fixed fonts (the bundled DejaVu Sans), sizes, DPI and
draw order, the Agg canvas (no display needed), and PNGs without software or time stamps, so drawing the same data
twice gives byte-identical files. Numbers reported by papers are always hollow or hatched and labelled
"reported"; measured ones are filled.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from matplotlib.transforms import Bbox

from iqabench.files import atomic_write_bytes
from iqabench.reports.metrics import FitError, logistic4, logistic4_fit
from iqabench.reports.schema import PairResult, Results, read_results
from iqabench.run.predictions import Prediction, PredictionStore

#: pixels per inch; figures are at most 9 inches wide, so the markdown shows them at about their own size
DPI = 100
STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships inside matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 11,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
REPORTED = "reported (paper)"
MEASURED = "measured"
#: the paper's averages in the reference CSVs (leaderboards/reference/README.md)
PRINTED_AVERAGES = {"test": "AVG", "in_domain": "AVG_in", "out_of_domain": "AVG_out"}
#: label offsets (points) tried in order around a point: beside it first, then rings further out (with a leader)
_LABEL_OFFSETS = ((6, 4), (6, -4), (-6, 4), (-6, -4), (0, 8), (0, -8)) + tuple(
    (dx * reach, dy * reach) for reach in (1, 2, 3) for dx, dy in ((12, 12), (12, -12), (-12, 12), (-12, -12),
                                                                    (0, 16), (0, -16), (18, 0), (-18, 0)))
#: the first offsets that sit right beside their point; further ones get a leader line
_BESIDE = 6
#: pixels kept free around each placed label
_LABEL_GAP = 2.0
#: the cost (in square pixels of overlap) of a label nearer another point than its own
_AMBIGUOUS = 400.0

F = TypeVar("F", bound=Callable[..., Any])


def _styled(function: F) -> F:
    """Run ``function`` under the fixed style, whatever the user's matplotlibrc says."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.style.context(["default", STYLE]):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _figure(width: float, height: float, *, constrained: bool = True) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` atomically as a PNG with no software or time stamp, so equal figures give equal bytes."""
    path = Path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _save(figure: Figure, path: str | Path | None) -> None:
    """Save unless ``path`` is None (a notebook or a test only wants the returned Figure)."""
    if path is not None:
        save_png(figure, path)


def _plain(text: str) -> str:
    """A label as typed: a '$' in a model name must not start mathtext."""
    return str(text).replace("$", r"\$")


# ----------------------------------------------------------------------------------------------- results data


def pair_metric(pair: PairResult | None, metric: str) -> float | None:
    """A pair's PLCC or SRCC as the leaderboard shows it: None when the pair failed or the metric is flagged."""
    return None if pair is None else pair.metric(metric)


def mean_accuracy(results: Results | Mapping[str, Any], model_key: str, metric: str) -> float | None:
    """Mean ``metric`` over every test set of the run; None unless all of them have a value."""
    results = read_results(results)
    values = [pair_metric(results.pair(model_key, t.key), metric) for t in results.test_sets]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


@dataclass(frozen=True)
class ReportedAverage:
    """A paper's number for one model, averaged like the measured ones, and how it was obtained."""

    model: str
    plcc: float
    srcc: float
    #: "the mean over this run's test sets" or "the paper's printed AVG" (or AVG_in, AVG_out)
    basis: str


def reported_average(results: Results | Mapping[str, Any], model: str) -> ReportedAverage | None:
    """The reported PLCC and SRCC of ``model`` averaged over this run's test sets.

    The mean of the reported per-dataset values when the paper gives one for every test set of the run, so
    that it averages exactly what the measured mean averages; otherwise the paper's printed average (Table 4
    prints only AVG) when the run has a single group of test sets; otherwise None.
    """
    results = read_results(results)
    rows = [r for r in _reference_rows(results) if r.model == model]
    by_dataset = {r.dataset: r for r in rows}
    tests = results.test_sets
    chosen = [by_dataset.get(t.dataset) for t in tests]
    if tests and all(r is not None and r.plcc is not None and r.srcc is not None for r in chosen):
        return ReportedAverage(model, sum(r.plcc for r in chosen) / len(chosen),
                               sum(r.srcc for r in chosen) / len(chosen), "the mean over this run's test sets")
    groups = {t.group for t in tests}
    printed = by_dataset.get(PRINTED_AVERAGES.get(next(iter(groups)), "")) if len(groups) == 1 else None
    if printed and printed.plcc is not None and printed.srcc is not None:
        return ReportedAverage(model, printed.plcc, printed.srcc, f"the paper's printed {printed.dataset}")
    return None


def _reference_rows(results: Results) -> list[Any]:
    return results.reference.rows if results.reference else []


def reported_parameters(results: Results | Mapping[str, Any], model: str) -> float | None:
    """The parameter count the paper states for ``model`` (the reference CSV's optional ``parameters`` column)."""
    results = read_results(results)
    for row in _reference_rows(results):
        if row.model == model and row.parameters is not None:
            return float(row.parameters)
    return None


def reference_models(results: Results | Mapping[str, Any]) -> list[str]:
    """Model names in the reference rows, in file order."""
    return list(dict.fromkeys(r.model for r in _reference_rows(read_results(results))))


def read_predictions(run_dir: str | Path, model_key: str, test_keys: Sequence[str]) -> dict[str, list[Prediction]]:
    """The prediction rows of one model per test set, for the test sets whose CSV is in ``run_dir``."""
    out = {}
    for key in test_keys:
        store = PredictionStore(Path(run_dir) / "predictions" / model_key, key)
        if store.csv_path.exists():
            out[key] = store.read()
    return out


# ----------------------------------------------------------------------------------------------- predictions


@_styled
def predictions_figure(results: Results | Mapping[str, Any], model_key: str,
                       predictions: Mapping[str, Sequence[Prediction]], path: str | Path | None) -> Figure:
    """One model's predictions against MOS, one panel per test set, as the leaderboard's numbers came from them.

    Scored images are dots (prediction on the model's own scale against the MOS rescaled to [1, 5]); unscored ones
    are red ticks at their MOS along the bottom, so one sees where a model fails. With ``correlation: logistic4``
    the 4-parameter logistic fitted for PLCC is drawn over the dots. Panel titles carry the test set, the number of
    images, PLCC and SRCC as in the table.
    """
    results = read_results(results)
    model = results.model(model_key)
    tests = results.test_sets
    columns = min(len(tests), 4)
    rows = math.ceil(len(tests) / columns)
    figure = _figure(max(4.6, 0.9 + 2.05 * columns), 0.7 + 2.5 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    logistic = results.suite.correlation == "logistic4"
    direction = "lower is better" if model.lower_better else "higher is better"
    for index, test in enumerate(tests):
        ax = axes[index // columns][index % columns]
        _predictions_panel(ax, test.label, results.pair(model_key, test.key), predictions.get(test.key),
                           logistic=logistic)
        if index % columns == 0:
            ax.set_ylabel(f"prediction ({direction})")
        if index // columns == rows - 1 or index + columns >= len(tests):
            ax.set_xlabel("MOS (rescaled to [1, 5])")
    for index in range(len(tests), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle(f"{_plain(model.label)}: predictions against MOS")
    _save(figure, path)
    return figure


def _predictions_panel(ax: Axes, label: str, pair: PairResult | None, rows: Sequence[Prediction] | None, *,
                       logistic: bool) -> None:
    label = _plain(label)
    if pair is None or pair.status != "ok" or rows is None:
        if pair is None or pair.status == "missing":
            why = "not run"
        elif pair.status == "failed":
            why = "failed:\n" + textwrap.fill(str(pair.error or ""), 32, max_lines=4)
        else:
            why = "prediction file not found"
        ax.set_title(label)
        ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="C3")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        return
    scored = [r for r in rows if r.prediction is not None]
    unscored = [r.mos for r in rows if r.prediction is None]
    mos = np.array([r.mos for r in scored], dtype=np.float64)
    pred = np.array([r.prediction for r in scored], dtype=np.float64)
    size, alpha = (14, 0.7) if len(scored) <= 300 else (6, 0.45) if len(scored) <= 3000 else (3, 0.25)
    ax.scatter(mos, pred, s=size, alpha=alpha, color="C0", linewidths=0)
    if logistic and len(scored) >= 3 and np.ptp(pred) > 0:
        sign = pair.sign
        try:
            params, direction = logistic4_fit(sign * pred, mos)
        except FitError:
            params = None  # the panel title carries the flagged PLCC; no curve to draw
        if params is not None:
            grid = np.linspace(pred.min(), pred.max(), 200)
            ax.plot(logistic4(direction * sign * grid, *params), grid, color="C1", linewidth=1.5,
                    label="logistic fit (PLCC)")
    if unscored:
        ax.plot(unscored, [0.02] * len(unscored), transform=ax.get_xaxis_transform(), linestyle="none",
                marker="|", markersize=9, color="C3", label=f"{len(unscored)} unscored (at MOS)")
    every = [r.mos for r in rows] or [1.0, 5.0]
    ax.set_xlim(min(1.0, min(every)) - 0.2, max(5.0, max(every)) + 0.2)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # whole MOS steps on a narrow panel
    count = f"n={len(rows)}" if not unscored else f"{len(scored)} of {len(rows)} scored"
    plcc, srcc = pair_metric(pair, "plcc"), pair_metric(pair, "srcc")
    ax.set_title(f"{label} ({count})\nPLCC {_number(plcc)} · SRCC {_number(srcc)}")
    if ax.get_legend_handles_labels()[0]:  # a fitted curve or unscored images
        ax.legend(loc="best", frameon=True, framealpha=0.85, handlelength=1.2)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------- per distortion


def distortion_types(results: Results, test_key: str) -> list[str]:
    """The distortion types of a test set in the order the run recorded them (the first model's, then others')."""
    names: dict[str, None] = {}
    for pair in results.results:
        if pair.test_set == test_key and pair.status == "ok":
            names.update(dict.fromkeys(g.name for g in pair.groups))
    return list(names)


def distortion_matrix(results: Results, test_key: str) -> tuple[list[str], list[str], np.ndarray]:
    """Model labels, distortion types and SRCC (models x types; NaN where flagged or not run)."""
    types = distortion_types(results, test_key)
    labels, rows = [], []
    for model in results.models:
        pair = results.pair(model.key, test_key)
        if pair is None or pair.status != "ok" or not pair.groups:
            continue
        by_name = {g.name: g.srcc.usable for g in pair.groups}
        labels.append(model.label)
        rows.append([np.nan if by_name.get(t) is None else by_name[t] for t in types])
    return labels, types, np.array(rows, dtype=np.float64).reshape(len(labels), len(types))


@_styled
def distortion_figure(results: Results | Mapping[str, Any], test_key: str, path: str | Path | None) -> Figure | None:
    """SRCC per distortion type as a heat map, models by types, each cell with its value (the table's numbers).

    The colour scale is fixed to [-1, 1] so that heat maps of different runs read alike; a flagged cell (too few
    images, constant predictions) is grey with a dash. None when the test set records no distortion types.
    """
    results = read_results(results)
    labels, types, values = distortion_matrix(results, test_key)
    if not labels or not types:
        return None
    figure = _figure(max(4.5, 2.2 + 0.48 * len(types)), 1.6 + 0.42 * len(labels) + 0.06 * max(len(t) for t in types))
    ax = figure.subplots()
    colours = matplotlib.colormaps["RdYlGn"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=-1.0, vmax=1.0, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        text = "—" if np.isnan(value) else f"{value:.2f}"
        ax.text(column, row, text, ha="center", va="center", fontsize=7,
                color="0.1" if np.isnan(value) or abs(value) < 0.75 else "white")
    ax.set_xticks(range(len(types)), [_plain(t) for t in types], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(labels)), [textwrap.fill(_plain(label), 28) for label in labels])
    ax.grid(False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    figure.colorbar(image, ax=ax, label="SRCC", shrink=0.9)
    test = results.test_set(test_key)
    figure.suptitle(f"{_plain(test.label)}: SRCC per distortion type")
    _save(figure, path)
    return figure


# ----------------------------------------------------------------------------------------------- failure gallery


@_styled
def gallery_figure(results: Results | Mapping[str, Any], model_key: str, misses: Mapping[str, Sequence[Any]],
                   path: str | Path | None) -> Figure | None:
    """One model's failure gallery: per test set (a row), the images with the largest rank error after the fit.

    ``misses`` maps a test set's key to its :class:`~iqabench.reports.gallery.Miss` list. Each thumbnail is made
    from the image on disk now; a missing image is a grey tile that says so. Under each: MOS, the prediction (and
    its value mapped onto the MOS scale by the fitted logistic), both ranks, and the first line of the model's
    reasoning when it wrote one. None when there is nothing to show.
    """
    from iqabench.reports.gallery import GALLERY_SIZE, image_path, thumbnail

    results = read_results(results)
    tests = [t for t in results.test_sets if misses.get(t.key)]
    if not tests:
        return None
    columns = GALLERY_SIZE
    reasoning = any(m.reasoning for t in tests for m in misses[t.key])
    cell_height = 1.75 + (0.5 if reasoning else 0.0)
    figure = _figure(9.0, 0.45 + cell_height * len(tests), constrained=False)
    top = 1 - 0.45 / figure.get_figheight()
    grid = figure.add_gridspec(len(tests), columns, left=0.03, right=0.995, top=top, bottom=0.0, wspace=0.06,
                               hspace=0.0)
    for row, test in enumerate(tests):
        for column in range(columns):
            ax = figure.add_subplot(grid[row, column])
            ax.set_axis_off()
            if column >= len(misses[test.key]):
                continue
            miss = misses[test.key][column]
            small = thumbnail(image_path(test, miss.image))
            if small is None:
                small = np.full((96, 96, 3), 0.85)
                ax.text(0.5, 0.5, "image not\non disk", ha="center", va="center", fontsize=6.5, color="0.3",
                        zorder=3)
            pixels = np.asarray(small)
            height = min(1.0, pixels.shape[0] / pixels.shape[1])  # the image's own proportions, top-aligned
            ax.imshow(pixels, extent=(0, 1, 1 - height, 1))
            ax.set_aspect("equal")
            ax.set_xlim(0, 1)
            ax.set_ylim(-0.75 - (0.45 if reasoning else 0.0), 1)
            fitted = "" if miss.fitted is None else f" → {miss.fitted:.2f}"
            caption = (f"MOS {miss.mos:.2f}\npred {miss.prediction:.3g}{fitted}\n"
                       f"rank {miss.predicted_rank} vs {miss.mos_rank} of {miss.scored}")
            if miss.reasoning:
                caption += "\n" + textwrap.fill(_plain(miss.reasoning), 24, max_lines=3, placeholder="…")
            ax.text(0.0, 1 - height - 0.04, caption, ha="left", va="top", fontsize=6.3, linespacing=1.2)
            if column == 0:
                ax.text(-0.06, 0.5, _plain(test.label), rotation=90, ha="right", va="center", fontsize=8)
    model = results.model(model_key)
    figure.suptitle(f"{_plain(model.label)}: largest rank errors (prediction rank vs MOS rank)", y=1 - 0.12 /
                    figure.get_figheight(), va="top")
    _save(figure, path)
    return figure


# ----------------------------------------------------------------------------------------------- accuracy vs cost


@dataclass(frozen=True)
class CostPoint:
    """One labelled point of the accuracy-against-cost figure."""

    label: str
    plcc: float
    srcc: float
    parameters: float | None
    ms_per_image: float | None
    reported: bool
    colour: str
    #: for reported points, how the paper's accuracy was averaged (:attr:`ReportedAverage.basis`)
    basis: str | None = None


def cost_points(results: Results | Mapping[str, Any]) -> tuple[list[CostPoint], list[str]]:
    """Measured points (models with an efficiency record and every test set scored) and reported ones (models the
    reference states a parameter count for); and the measured models left out, with why."""
    results = read_results(results)
    points, left_out = [], []
    colours = {}
    for index, model in enumerate(results.models):
        colour = f"C{index % 10}"
        if model.reference:
            colours[model.reference] = colour
        eff = model.efficiency
        plcc, srcc = mean_accuracy(results, model.key, "plcc"), mean_accuracy(results, model.key, "srcc")
        if plcc is None or srcc is None:
            left_out.append(f"{model.label} (not every test set has PLCC and SRCC)")
        elif not eff:
            left_out.append(f"{model.label} (no efficiency measurement)")
        else:
            parameters = eff.parameters or None  # a model without parameters has no place on a log axis
            points.append(CostPoint(model.label, plcc, srcc, parameters, eff.ms_per_image, False, colour))
    for name in reference_models(results):
        parameters, average = reported_parameters(results, name), reported_average(results, name)
        if parameters and average:
            points.append(CostPoint(f"{name} (reported)", average.plcc, average.srcc, parameters, None, True,
                                    colours.get(name, "0.35"), average.basis))
    return points, left_out


@_styled
def accuracy_cost_figure(results: Results | Mapping[str, Any], path: str | Path | None) -> Figure | None:
    """Mean PLCC and SRCC against parameters and against ms/image, one labelled point per model (paper Figure 1).

    Measured points are filled; reported ones (a paper's accuracy at the parameter count it states) are hollow
    and named "(reported)". The paper states no absolute latency, so reported points appear against parameters
    only. None (nothing drawn) when no model has both a measured cost and a complete accuracy row.
    """
    results = read_results(results)
    points, _ = cost_points(results)
    if not any(not p.reported and (p.parameters or p.ms_per_image) for p in points):
        return None
    figure = _figure(9.0, 8.6, constrained=False)
    axes = figure.subplots(2, 2)
    figure.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.12, wspace=0.18, hspace=0.3)
    tests = results.test_sets
    over = tests[0].label if len(tests) == 1 else f"mean over {len(tests)} test sets"
    for row, metric in enumerate(("plcc", "srcc")):
        for column, cost in enumerate(("parameters", "ms_per_image")):
            ax = axes[row][column]
            chosen = [p for p in points if getattr(p, cost)]
            _cost_panel(ax, chosen, cost, metric)
            ax.set_ylabel(f"{metric.upper()} ({over})")
            ax.set_xlabel("parameters (log scale)" if cost == "parameters" else _latency_label(results))
    # one y range per row, so the two panels of a metric read against each other
    for row in axes:
        drawn = [ax for ax in row if ax.lines]
        low, high = min(ax.get_ylim()[0] for ax in drawn), max(ax.get_ylim()[1] for ax in drawn)
        for ax in drawn:
            ax.set_ylim(low, high)
    for row, metric in enumerate(("plcc", "srcc")):
        for column, cost in enumerate(("parameters", "ms_per_image")):
            chosen = [p for p in points if getattr(p, cost)]
            _label_points(axes[row][column], [(getattr(p, cost), getattr(p, metric), _plain(p.label), p.colour)
                                              for p in chosen])
    handles = [Line2D([], [], marker="o", linestyle="none", color="0.2", label=MEASURED)]
    if any(p.reported for p in points):
        handles.append(Line2D([], [], marker="o", linestyle="none", color="0.2", markerfacecolor="none",
                              label=REPORTED))
    figure.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    figure.suptitle("Accuracy against cost (as the paper's Figure 1)")
    _save(figure, path)
    return figure


def _latency_label(results: Results) -> str:
    """The axis title, with the measuring conditions the models share (the others vary: see the table)."""
    records = [m.efficiency for m in results.models if m.efficiency]
    shared, varying = [], []
    for key, show in (("device_name", "{}"), ("dtype", "{}"), ("batch_size", "batch {}")):
        values = {getattr(e, key) for e in records}
        if len(values) == 1:
            shared.append(show.format(next(iter(values))))
        else:
            varying.append(show.format("size") if key == "batch_size" else key.removesuffix("_name"))
    conditions = ", ".join(shared) + (f"; {' and '.join(varying)} per model" if varying else "")
    return f"ms / image (log scale)\n{_plain(conditions)}"


def _cost_panel(ax: Axes, points: Sequence[CostPoint], cost: str, metric: str) -> None:
    ax.set_xscale("log")
    if not points:
        ax.text(0.5, 0.5, "nothing measured", transform=ax.transAxes, ha="center", va="center", color="0.4")
        return
    for point in points:
        x, y = getattr(point, cost), getattr(point, metric)
        if point.reported:
            ax.plot([x], [y], marker="o", markersize=8, linestyle="none", color=point.colour, markerfacecolor="none",
                    markeredgewidth=1.6, label=point.label)
        else:
            ax.plot([x], [y], marker="o", markersize=8, linestyle="none", color=point.colour, label=point.label)
    xs = [getattr(p, cost) for p in points]
    ys = [getattr(p, metric) for p in points]
    ax.set_xlim(min(xs) / 10**0.6, max(xs) * 10**0.6)
    span = max(ys) - min(ys)
    ax.set_ylim(max(-1.05, min(ys) - 0.15 * span - 0.04), min(1.05, max(ys) + 0.15 * span + 0.04))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    low, high = ax.get_xlim()
    _log_ticks(ax.xaxis, low, high, _count if cost == "parameters" else _plain_number)


def _log_ticks(axis: Any, low: float, high: float, label: Callable[[float, Any], str]) -> None:
    """Plain-number labels on a log axis: decades only over a wide range, 1-2-5 steps over a narrow one."""
    wide = math.log10(high / low) > 3
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(label))


def _count(value: float, _position: Any = None) -> str:
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _plain_number(value: float, _position: Any = None) -> str:
    return f"{value:g}"


def _label_points(ax: Axes, points: Sequence[tuple[float, float, str, str]], fontsize: float = 8) -> list[Annotation]:
    """Label each ``(x, y, text, colour)`` beside its point, avoiding the other points, labels and the axes edge.

    Greedy and deterministic: each label takes the first spot of :data:`_LABEL_OFFSETS` that is free and nearer
    its own point than any other (so a reader pairs them right), or else the one that does least harm. The axes
    limits and position must be final.
    """
    renderer = ax.figure.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    centres = [tuple(ax.transData.transform((x, y))) for x, y, _, _ in points]
    taken = [Bbox.from_extents(px - 5, py - 5, px + 5, py + 5) for px, py in centres]
    placed = []
    for own, (x, y, text, colour) in enumerate(points):
        best: tuple[float, int] | None = None
        for index, (dx, dy) in enumerate(_LABEL_OFFSETS):
            box = _label_box(ax, renderer, (x, y), text, (dx, dy), fontsize)
            cost = sum(_overlap(box, other) for other in taken) + box.width * box.height - _overlap(box, area)
            mine = _distance(box, centres[own])
            if any(_distance(box, c) < mine for i, c in enumerate(centres) if i != own):
                cost += _AMBIGUOUS
            if best is None or cost < best[0]:
                best = (cost, index)
            if cost == 0:
                break
        dx, dy = _LABEL_OFFSETS[best[1]]
        leader = None if best[1] < _BESIDE else {"arrowstyle": "-", "color": colour, "linewidth": 0.6,
                                                  "shrinkA": 0, "shrinkB": 5}
        note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                           color=colour, arrowprops=leader, **_alignment(dx, dy))
        taken.append(_label_box(ax, renderer, (x, y), text, (dx, dy), fontsize).padded(_LABEL_GAP))
        placed.append(note)
    return placed


def _distance(box: Bbox, point: tuple[float, float]) -> float:
    """Pixels from ``point`` to the nearest edge of ``box`` (0 inside)."""
    x, y = point
    return math.hypot(max(box.x0 - x, 0.0, x - box.x1), max(box.y0 - y, 0.0, y - box.y1))


def _alignment(dx: float, dy: float) -> dict[str, str]:
    """Text anchored on the side facing its point."""
    return {"ha": "left" if dx > 0 else "right" if dx < 0 else "center",
            "va": "bottom" if dy > 0 else "top" if dy < 0 else "center"}


def _label_box(ax: Axes, renderer: Any, xy: tuple[float, float], text: str, offset: tuple[float, float],
               fontsize: float) -> Bbox:
    """Where a label's text would be drawn, in pixels (without drawing it)."""
    probe = ax.annotate(text, xy, xytext=offset, textcoords="offset points", fontsize=fontsize, **_alignment(*offset))
    box = probe.get_window_extent(renderer)
    probe.remove()
    return box


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, width) * max(0.0, height)


# ----------------------------------------------------------------------------------------------- measured vs reported


@dataclass(frozen=True)
class ComparisonRow:
    """A measured model next to the paper's numbers for it, both averaged over the run's test sets."""

    label: str
    plcc: float | None
    srcc: float | None
    reported: ReportedAverage


def comparison_rows(results: Results | Mapping[str, Any]) -> list[ComparisonRow]:
    """Models whose suite entry names a reference row with a usable average, in suite order."""
    results = read_results(results)
    rows = []
    for model in results.models:
        name = model.reference
        average = reported_average(results, name) if name else None
        if average:
            rows.append(ComparisonRow(model.label, mean_accuracy(results, model.key, "plcc"),
                                      mean_accuracy(results, model.key, "srcc"), average))
    return rows


@_styled
def reported_comparison_figure(results: Results | Mapping[str, Any], path: str | Path | None) -> Figure | None:
    """Measured against reported mean PLCC and SRCC per model as grouped bars (the RALI ablations: Table 4).

    Measured bars are filled, reported ones hollow and hatched, each with its value written at its end; a model
    whose measurement is incomplete says so where its bar would be. None when no model names a reference row.
    """
    results = read_results(results)
    rows = comparison_rows(results)
    if not rows:
        return None
    figure = _figure(9.0, 1.5 + 0.85 * len(rows))
    ax = figure.subplots()
    height = 0.19
    bars = (("plcc", False, "C0"), ("plcc", True, "C0"), ("srcc", False, "C1"), ("srcc", True, "C1"))
    values = []
    for index, row in enumerate(rows):
        centre = -float(index)
        for slot, (metric, reported, colour) in enumerate(bars):
            value = getattr(row.reported, metric) if reported else getattr(row, metric)
            y = centre + (1.5 - slot) * height
            if value is None:
                ax.text(0.01, y, f"measured {metric.upper()}: incomplete (see the accuracy table)",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7.5, color="C3")
                continue
            values.append(value)
            style = {"facecolor": "white", "edgecolor": colour, "hatch": "///"} if reported else {"color": colour}
            ax.barh([y], [value], height=height * 0.92, linewidth=1.0, **style)
            ax.annotate(f"{value:.3f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center",
                        fontsize=7.5, color="0.15")
    low = min(values)
    # bars this close together need a zoomed axis; the label says where it starts
    ax.set_xlim(max(0.0, math.floor((low - 0.05) * 20) / 20) if low >= 0 else max(-1.0, low - 0.05),
                max(values) + 0.06)
    ax.set_ylim(-len(rows) + 0.5, 0.5)
    ax.set_yticks([-float(i) for i in range(len(rows))],
                  [textwrap.fill(_plain(r.label), 30) for r in rows])
    ax.grid(axis="y", visible=False)
    over = "the test set" if len(results.test_sets) == 1 else f"{len(results.test_sets)} test sets"
    ax.set_xlabel(f"mean over {over} (axis starts at {ax.get_xlim()[0]:g})")
    tables = sorted({r.table for r in _reference_rows(results) if r.table})
    handles = [Patch(color="C0", label="PLCC measured"),
               Patch(facecolor="white", edgecolor="C0", hatch="///", label=f"PLCC {REPORTED}"),
               Patch(color="C1", label="SRCC measured"),
               Patch(facecolor="white", edgecolor="C1", hatch="///", label=f"SRCC {REPORTED}")]
    figure.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    figure.suptitle(f"Measured against reported{' (' + ', '.join(tables) + ')' if tables else ''}")
    _save(figure, path)
    return figure


# ----------------------------------------------------------------------------------------------- efficiency (bench)


@_styled
def efficiency_figure(report: Mapping[str, Any], path: str | Path | None) -> Figure:
    """Peak memory and time per image of every model at each batch size, in the layout of the paper's Figure 6.

    ``report`` is the ``iqabench bench`` report: ``models[i]`` with ``label`` and ``rows[j]`` (``batch_size``,
    ``ms_per_image``, ``peak_memory_mib``, ``error``), ``ratios`` (model / baseline per batch size) and
    ``baseline``. Log scale, so a model at 3% of the baseline still shows; each non-baseline bar carries its
    ratio to the baseline, starred when the report marks the pair not comparable (a model below its released
    size). A failed batch size says "failed" where its bar would be.
    """
    models = report["models"]
    sizes = sorted({r["batch_size"] for m in models for r in m.get("rows", [])})
    baseline = _baseline_label(report)
    ratios = {(r["model"], r["batch_size"]): r for r in report.get("ratios") or []}
    memory = [r.get("peak_memory_mib") for m in models for r in m.get("rows", []) if not r.get("error")]
    gib = max([v for v in memory if v] or [0]) > 2048
    figure = _figure(9.0, 4.6)
    axes = figure.subplots(1, 2)
    panels = (("peak_memory_mib", "memory", f"peak memory ({'GiB' if gib else 'MiB'}, log scale)",
               (1 / 1024) if gib else 1.0),
              ("ms_per_image", "time", "model time per image (ms, log scale)", 1.0))
    width = 0.8 / max(1, len(models))
    starred = False
    for ax, (field, ratio_key, ylabel, scale) in zip(axes, panels):
        ax.set_yscale("log")
        heights = []
        for index, model in enumerate(models):
            rows = {r["batch_size"]: r for r in model.get("rows", [])}
            for position, size in enumerate(sizes):
                x = position + (index - (len(models) - 1) / 2) * width
                row = rows.get(size)
                value = None if row is None or row.get("error") else row.get(field)
                if value is None:
                    ax.text(x, 0.03, "failed" if row is not None else "not run", rotation=90, ha="center",
                            va="bottom", fontsize=7, color="C3", transform=ax.get_xaxis_transform())
                    continue
                ax.bar([x], [value * scale], width=width * 0.9, color=f"C{index % 10}")
                heights.append(value * scale)
                text = _short(value * scale)
                ratio = ratios.get((model["label"], size))
                if ratio and ratio.get(ratio_key) is not None:
                    mark = "" if ratio.get("comparable", True) else "*"
                    starred = starred or bool(mark)
                    text += f"\n{_percent(ratio[ratio_key])}{mark}"
                ax.annotate(text, (x, value * scale), xytext=(0, 2), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7.5, linespacing=1.1)
        if heights:
            ax.set_ylim(min(heights) / 2.5, max(heights) * 5)
            _log_ticks(ax.yaxis, min(heights) / 2.5, max(heights) * 5, _plain_number)
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(axis="x", visible=False)
    axes[0].set_title("Memory")
    axes[1].set_title("Time")
    handles = [Patch(color=f"C{i % 10}", label=_plain(m["label"]) + (" (baseline: 100%)" if m["label"] == baseline
                                                                       else ""))
               for i, m in enumerate(models)]
    figure.legend(handles=handles, loc="outside lower center", ncol=1 if len(models) > 2 else len(models),
                  frameon=False)
    title = "Memory and time per model" + (f", % of {_plain(baseline)}" if baseline else "")
    if report.get("device_name"):
        title += f"\n{_plain(report['device_name'])}"
    if starred:
        title += "  (* not comparable: a model below its released size)"
    figure.suptitle(title)
    _save(figure, path)
    return figure


def _baseline_label(report: Mapping[str, Any]) -> str | None:
    """The baseline's label: ratios name it; else the model whose name or label is ``report["baseline"]``."""
    for ratio in report.get("ratios") or []:
        if ratio.get("baseline"):
            return ratio["baseline"]
    name = report.get("baseline")
    for model in report["models"]:
        if name is not None and name in (model.get("model"), model.get("label")):
            return model["label"]
    return None


def _short(value: float) -> str:
    """Three significant digits, without exponents: 0.512, 14.7, 1,158."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _percent(ratio: float) -> str:
    value = 100 * ratio
    return f"{value:.0f}%" if value >= 1000 else f"{value:.1f}%"
