"""Markdown leaderboards in the layout of the paper's tables.

Accuracy: one row per model, one column per test set plus AVG, cells
``PLCC / SRCC`` with the best in bold and the second underlined, as in Tables 2
and 3 (cross-domain runs get in-domain and out-of-domain groups, each with its
AVG). Cells say when a pair failed or when images went unscored. A cell with a
flagged metric (constant predictions, a failed logistic fit, too few images)
shows the flag and whatever value is still valid, but is never ranked: a number
the protocol could not compute properly must not be bold. Efficiency, reported
numbers (labelled "reported") and measured-minus-reported follow.

:func:`write_leaderboard` writes the markdown with its figures (:mod:`iqabench.reports.figures`) embedded: predictions
against MOS per model, accuracy against cost, measured against reported. It needs only ``results.json`` and the
prediction files, so ``iqabench leaderboard RUN`` redraws everything without loading a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from iqabench.reports import figures as figs
from iqabench.reports import gallery
from iqabench.reports.html import write_html
from iqabench.reports.inputs import inputs_table
from iqabench.reports.schema import PairResult, Results, read_results
from iqabench.reports.significance import TIED, significance_legend, tied_models
from iqabench.run.predictions import atomic_write_text

log = logging.getLogger("iqabench.reports.leaderboard")

GROUP_TITLES = {"test": "", "in_domain": "In-domain", "out_of_domain": "Out-of-domain"}


def _rank_marks(values: list[float | None]) -> list[str]:
    """'best', 'second' or '' for each value (ties share a mark)."""
    present = sorted({v for v in values if v is not None}, reverse=True)
    marks = []
    for v in values:
        if v is None or not present:
            marks.append("")
        elif v == present[0]:
            marks.append("best")
        elif len(present) > 1 and v == present[1]:
            marks.append("second")
        else:
            marks.append("")
    return marks


def _fmt(value: float | None, mark: str, tied: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:.3f}"
    if mark == "best":
        return f"**{text}**"
    if mark == "second":
        text = f"<u>{text}</u>"
    return text + (TIED if tied else "")


def _columns(results: Results) -> list[tuple[str, str, str | None]]:
    """(group, header, test key or None for AVG) in table order."""
    columns = []
    groups: dict[str, list[Any]] = {}
    for test in results.test_sets:
        groups.setdefault(test.group, []).append(test)
    for group, tests in groups.items():
        prefix = f"{GROUP_TITLES.get(group, group)}: " if GROUP_TITLES.get(group) else ""
        for test in tests:
            columns.append((group, prefix + test.label, test.key))
        if len(tests) > 1:
            columns.append((group, prefix + "AVG", None))
    return columns


def _metric(pair: PairResult | None, name: str) -> float | None:
    return None if pair is None else pair.metric(name)


def _accuracy_table(results: Results) -> str:
    pairs = {(p.model, p.test_set): p for p in results.results}
    models = results.models
    columns = _columns(results)
    grid: dict[tuple[str, int], tuple[float | None, float | None, str]] = {}
    #: cells whose values are shown but never ranked
    flagged: set[tuple[str, int]] = set()
    for model in models:
        for col, (group, _, test_key) in enumerate(columns):
            if test_key is not None:
                pair = pairs.get((model.key, test_key))
                note = ""
                if pair is None or pair.status == "missing":
                    note = "not run"
                elif pair.status == "failed":
                    note = "failed (see failures/)"
                else:
                    if pair.unscored:
                        note = f"{pair.unscored} unscored"
                    if pair.flags:
                        flagged.add((model.key, col))
                        note = "; ".join(sorted(pair.flags)) + (f"; {note}" if note else "")
                grid[(model.key, col)] = (_metric(pair, "plcc"), _metric(pair, "srcc"), note)
            else:
                members = [c for c, (g, _, k) in enumerate(columns) if g == group and k is not None]
                cells = [grid[(model.key, c)] for c in members]
                if all(c[0] is not None and c[1] is not None for c in cells):
                    grid[(model.key, col)] = (
                        sum(c[0] for c in cells) / len(cells),
                        sum(c[1] for c in cells) / len(cells),
                        "",
                    )
                else:
                    grid[(model.key, col)] = (None, None, "incomplete")
    rows = []
    marks: dict[tuple[str, int], tuple[str, str]] = {}
    for col in range(len(columns)):
        ranked = [(None, None) if (m.key, col) in flagged else grid[(m.key, col)][:2] for m in models]
        plcc_marks = _rank_marks([values[0] for values in ranked])
        srcc_marks = _rank_marks([values[1] for values in ranked])
        for model, pm, sm in zip(models, plcc_marks, srcc_marks):
            marks[(model.key, col)] = (pm, sm)
    ties = [tied_models(results, test_key) for _, _, test_key in columns]
    for model in models:
        row = [model.label, model.weights.kind if model.weights else "—"]
        for col in range(len(columns)):
            plcc, srcc, note = grid[(model.key, col)]
            pm, sm = marks[(model.key, col)]
            tied = (model.key in ties[col]["plcc"], model.key in ties[col]["srcc"])
            if plcc is None and srcc is None:
                cell = note or "—"
            else:
                cell = f"{_fmt(plcc, pm, tied[0])} / {_fmt(srcc, sm, tied[1])}"
                if note:
                    cell += f" ({note})"
            row.append(cell)
        rows.append(row)
    return tabulate(rows, headers=["Model", "Weights"] + [c[1] for c in columns], tablefmt="github")


def _inputs_table(results: Results) -> str | None:
    table = inputs_table(results)
    if table is None:
        return None
    text = tabulate(table.rows, headers=table.headers, tablefmt="github")
    return text + ("\n\n" + "\n".join(f"- {note}" for note in table.notes) if table.notes else "")


def _efficiency_table(results: Results) -> str | None:
    rows = []
    for model in results.models:
        eff = model.efficiency
        if not eff:
            continue
        memory = "—" if eff.peak_memory_mib is None else f"{eff.peak_memory_mib:.0f}"
        if eff.peak_memory_mib is not None and eff.baseline_memory_mib is not None:
            memory += f" (+{max(0.0, eff.peak_memory_mib - eff.baseline_memory_mib):.0f})"
        parameters = eff.parameters or 0
        rows.append(
            [
                model.label,
                f"{parameters / 1e6:.2f} M" if parameters >= 1e4 else str(parameters),
                eff.batch_size,
                _number(eff.ms_per_image, ".2f"),
                _number(eff.images_per_second, ".1f"),
                memory,
                eff.input_resolution,
                f"{eff.device_name} / {eff.dtype}",
            ]
        )
    if not rows:
        return None
    methods = sorted({m.efficiency.memory_method for m in results.models if m.efficiency})
    table = tabulate(
        rows,
        headers=["Model", "Params", "Batch", "ms / image", "images / s", "Peak memory (MiB)", "Input",
                 "Device / dtype"],
        tablefmt="github",
    )
    measured = any(m.efficiency.peak_memory_mib is not None for m in results.models if m.efficiency)
    brackets = "; in brackets the rise over the memory held before the measured calls (weights already loaded)"
    return (
        table
        + "\n\nLatency: model time only (inputs decoded beforehand), warm-up excluded, median over repeats, "
        + f"device synchronised. Memory: {'; '.join(methods)}{brackets if measured else ''}."
    )


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _significance_tables(results: Results) -> str | None:
    """Per test set, each model against the best: the difference with its interval, the raw and corrected p."""
    if not results.significance:
        return None
    labels = {m.key: m.label for m in results.models}
    blocks = []
    for test in results.test_sets:
        record = results.significance.for_test(test.key)
        if record is None:
            continue
        rows = []
        for metric in ("plcc", "srcc"):
            ranking = getattr(record, metric)
            for other in ranking.others:
                pair = next((c for c in record.pairs if {c.a, c.b} == {ranking.best, other.model}), None)
                diff = getattr(pair, metric) if pair else None
                flip = -1.0 if pair is not None and pair.a == ranking.best else 1.0  # other minus best
                delta = None if diff is None or diff.difference is None else flip * diff.difference
                ends = [] if diff is None or diff.low is None else sorted((flip * diff.low, flip * diff.high))
                interval = f" [{ends[0]:+.3f}, {ends[1]:+.3f}]" if ends else ""
                rows.append([metric.upper(), labels.get(other.model, other.model), labels.get(ranking.best),
                             _signed(delta) + interval, _p(other.p), _p(other.p_adjusted),
                             "tied (†)" if other.tied else "different" if other.p_adjusted is not None else "—"])
        if rows:
            blocks.append(f"**{test.label}**\n\n" + tabulate(
                rows, headers=["Metric", "Model", "Best", "Model − best [95% CI]", "p", "p (corrected)", "Verdict"],
                tablefmt="github", disable_numparse=True))
    if not blocks:
        return None
    return "### Significance against the best\n\n" + "\n\n".join(blocks)


def distortion_tables(results: Results, figures: Mapping[str, str] | None = None) -> str | None:
    """Per test set that records distortion types: SRCC per type (rows) and model (columns), best in bold.

    ``figures`` maps a test set's key to the markdown of its heat map, shown after its table.
    """
    figures = figures or {}
    blocks = []
    for test in results.test_sets:
        labels, types, values = figs.distortion_matrix(results, test.key)
        if not labels or not types:
            continue
        counts = {}
        for pair in results.results:
            if pair.test_set == test.key:
                counts.update({g.name: g.count for g in pair.groups if g.name not in counts})
        rows = []
        for column, kind in enumerate(types):
            marks = _rank_marks([None if np.isnan(v) else float(v) for v in values[:, column]])
            rows.append([f"{kind} ({counts.get(kind, 0)})"] + [
                "—" if np.isnan(v) else _fmt(float(v), mark if mark == "best" else "")
                for v, mark in zip(values[:, column], marks)])
        block = f"**{test.label}**: SRCC per distortion type (images of the type in brackets)\n\n" + tabulate(
            rows, headers=["Distortion type"] + labels, tablefmt="github", disable_numparse=True)
        if figures.get(test.key):
            block += "\n\n" + figures[test.key]
        blocks.append(block)
    if not blocks:
        return None
    return ("## Per distortion type\n\nSRCC of each model over the images of each distortion type, as the dataset "
            "labels them; best of each row in **bold**; — where a type has too few scored images or constant "
            "labels. PLCC per type is in `results.json` (`groups`).\n\n" + "\n\n".join(blocks))


#: a reference row for this "dataset" is the average over the test sets (Table 4 reports only that)
AVG_KEY = "AVG"


def _number(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _measured(results: Results, pairs: dict[tuple[str, str], PairResult], model_key: str,
              column: str) -> tuple[float | None, float | None]:
    """Measured PLCC and SRCC of one model for one test set, or their average over all test sets for ``AVG``."""
    keys = [t.key for t in results.test_sets] if column == AVG_KEY else [column]
    values = [(_metric(pairs.get((model_key, k)), "plcc"), _metric(pairs.get((model_key, k)), "srcc")) for k in keys]
    if any(p is None or s is None for p, s in values):
        return None, None
    return sum(p for p, _ in values) / len(values), sum(s for _, s in values) / len(values)


def _reference_tables(results: Results) -> list[str]:
    reference = results.reference
    if not reference:
        return []
    by_dataset = {}
    for test in results.test_sets:
        by_dataset.setdefault(test.dataset, test.key)
    columns = [(t.key, t.label) for t in results.test_sets]
    single_group = len({t.group for t in results.test_sets}) == 1
    if single_group and any(row.dataset == AVG_KEY for row in reference.rows):
        by_dataset[AVG_KEY] = AVG_KEY
        columns.append((AVG_KEY, AVG_KEY))
    reported: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    sources = set()
    for row in reference.rows:
        key = by_dataset.get(row.dataset)
        if key is None:
            continue
        reported.setdefault(row.model, {})[key] = (row.plcc, row.srcc)
        if row.source:
            sources.add(row.source)
    if not reported:
        return []

    def cell(pair: tuple[float | None, float | None] | None) -> str:
        if not pair:
            return "—"
        return " / ".join("—" if v is None else f"{v:.3f}" for v in pair)

    rows = [[name] + [cell(values.get(k)) for k, _ in columns] for name, values in reported.items()]
    out = [
        "## Reported numbers (from the papers, not measured here)\n\n"
        + f"Source: {'; '.join(sorted(sources)) or reference.file}.\n\n"
        + tabulate(rows, headers=["Model (reported)"] + [label for _, label in columns], tablefmt="github")
    ]
    pairs = {(p.model, p.test_set): p for p in results.results}
    diff_rows = []
    for model in results.models:
        name = model.reference
        if not name or name not in reported:
            continue
        row = [f"{model.label} − {name} (reported)"]
        for key, _ in columns:
            rep = reported[name].get(key)
            mp, ms = _measured(results, pairs, model.key, key)
            if rep is None or mp is None or ms is None or rep[0] is None or rep[1] is None:
                row.append("—")
            else:
                row.append(f"{mp - rep[0]:+.3f} / {ms - rep[1]:+.3f}")
        diff_rows.append(row)
    if diff_rows:
        out.append(
            "## Measured minus reported\n\n"
            + tabulate(diff_rows, headers=["Model"] + [label for _, label in columns], tablefmt="github")
        )
    return out


def _failures(results: Results) -> str | None:
    lines = []
    labels = {m.key: m.label for m in results.models}
    tests = {t.key: t.label for t in results.test_sets}
    for pair in results.results:
        label = f"{labels.get(pair.model, pair.model)} on {tests.get(pair.test_set, pair.test_set)}"
        if pair.status == "failed":
            lines.append(f"- {label}: failed: {pair.error} (traceback: `{pair.traceback}`)")
        elif pair.status == "ok" and pair.unscored:
            reasons = "; ".join(f"{n}× {reason}" for reason, n in pair.failure_reasons.items())
            lines.append(f"- {label}: {pair.unscored} of {pair.count} images unscored ({reasons})")
        counts = {k: v for k, v in ((pair.meta or {}).get("model_counts") or {}).items() if v}
        if counts.get("out_of_range_images"):
            lines.append(f"- {label}: {counts['out_of_range_images']} image(s) scored from ratings outside the "
                         "model's range, accepted as the official parser accepts them")
    for model in results.models:
        training = model.training or {}
        if training.get("status") == "failed":
            lines.append(f"- {model.label}: training failed: {training.get('error')}")
    for test in results.test_sets:
        for caution in test.dataset_provenance.warnings if test.dataset_provenance else []:
            lines.append(f"- {test.label} (dataset): {caution}")
    return "\n".join(lines) if lines else None


def render_leaderboard(results: Results | Mapping[str, Any], figures: Mapping[str, Sequence[str]] | None = None
                       ) -> str:
    """The leaderboard's markdown; ``figures`` maps a section ("accuracy", "efficiency", "reference") to markdown
    blocks (figure links and captions) shown after that section's table, and "distortions" to a mapping of test
    set keys to the markdown of their heat maps."""
    results = read_results(results)
    figures = figures or {}
    suite = results.suite
    prov = results.provenance
    fit = {
        "none": "PLCC on raw predictions (no fitting)",
        "logistic4": "PLCC after a VQEG 4-parameter logistic fit, monotone in the direction of the raw predictions "
        "and signed by it (an anti-correlated model gets a negative PLCC)",
    }
    parts = [f"# {suite.name}"]
    if suite.description:
        parts.append(suite.description.strip())
    if suite.notes:
        parts.append(f"> **Note:** {suite.notes.strip()}")
    counts = ", ".join(f"{t.label} {t.split} ({t.count} images)" for t in results.test_sets)
    parts.append(
        f"Protocol: `{suite.protocol}`. Cells are PLCC / SRCC; best **bold**, second <u>underlined</u>. "
        f"{fit.get(suite.correlation, suite.correlation)}; SRCC on ranks. Lower-is-better models are negated "
        f"before correlating. Test sets: {counts}. 95% bootstrap intervals ({suite.bootstrap} resamples) are in "
        "`results.json`."
    )
    legend = significance_legend(results)
    parts.append("## Accuracy\n\n" + _accuracy_table(results) + (f"\n\n{legend}" if legend else ""))
    significance = _significance_tables(results)
    if significance:
        parts.append(significance)
    distortions = distortion_tables(results, figures.get("distortions", {}))
    if distortions:
        parts.append(distortions)
    parts.extend(figures.get("accuracy", ()))
    parts.extend(figures.get("gallery", ()))
    inputs = _inputs_table(results)
    if inputs:
        parts.append("## Inputs and weights\n\nEach model's images per test set (the dataset options and resize in "
                     "force, before the model's own preprocessing), the source of each choice, and why a released "
                     "checkpoint is not retrained.\n\n" + inputs)
    efficiency = _efficiency_table(results)
    if efficiency:
        parts.append("## Efficiency\n\n" + efficiency)
    parts.extend(figures.get("efficiency", ()))
    parts.extend(_reference_tables(results))
    parts.extend(figures.get("reference", ()))
    failures = _failures(results)
    if failures:
        parts.append("## Failures, unscored images and warnings\n\n" + failures)
    versions = ", ".join(f"{k} {v}" for k, v in prov.versions.items() if v)
    parts.append(
        "## Provenance\n\n"
        f"- Command: `{prov.command}`\n"
        f"- Suite: `{suite.file}` (sha256 {suite.sha256[:16]}…), seed {suite.seed}, "
        f"device {suite.device}, dtype {suite.dtype}, batch size {suite.batch_size}\n"
        f"- Git commit: {prov.git_commit or 'unknown'}; created {prov.created}\n"
        f"- {prov.platform}, Python {prov.python}; {versions}"
        + "".join(f"\n- {line}" for line in _scope_lines(results))
    )
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------- with figures

FIGURES = "figures"


def write_leaderboard(results: Results | Mapping[str, Any], run_dir: str | Path) -> Path:
    """Write ``leaderboard.md``, its figures (``figures/*.png``) and ``leaderboard.html`` into ``run_dir``; return
    the markdown's path.

    Called by the runner after a run and by ``iqabench leaderboard RUN`` later, from ``results.json`` and the
    prediction files alone. A model whose prediction files are not in ``run_dir`` (a results folder copied
    without ``predictions/``) keeps the predictions figure drawn earlier, if there is one. A figure that cannot
    be drawn is reported in its place; the tables are written regardless.
    """
    results = read_results(results)
    run_dir = Path(run_dir)
    predictions = {m.key: figs.read_predictions(run_dir, m.key, [t.key for t in results.test_sets])
                   for m in results.models}
    blocks: dict[str, Any] = {
        "distortions": _distortion_blocks(results, run_dir),
        "accuracy": _predictions_blocks(results, run_dir),
        "gallery": _gallery_blocks(results, predictions, run_dir),
        "efficiency": _cost_blocks(results, run_dir),
        "reference": _comparison_blocks(results, run_dir),
    }
    target = run_dir / "leaderboard.md"
    atomic_write_text(target, render_leaderboard(results, {k: v for k, v in blocks.items() if v}))
    try:
        write_html(results, run_dir, predictions)
    except Exception as exc:  # noqa: BLE001 - the page must not cost a run its markdown leaderboard
        log.warning("leaderboard.html not written: %s: %s", type(exc).__name__, exc)
    return target


def _draw(what: str, draw: Callable[[], Any]) -> tuple[Any, str | None]:
    """``draw()``, or its error as a line for the markdown: a figure must not cost a run its leaderboard."""
    try:
        return draw(), None
    except Exception as exc:  # noqa: BLE001 - any drawing error; the tables still get written
        log.warning("figure %s not drawn: %s: %s", what, type(exc).__name__, exc)
        return None, f"*Figure {what} not drawn: {type(exc).__name__}: {exc}*"


def _link(alt: str, name: str) -> str:
    return f"![{alt.replace('[', '(').replace(']', ')')}]({name})"


def _predictions_blocks(results: Results, run_dir: Path) -> list[str]:
    lines = []
    test_keys = [t.key for t in results.test_sets]
    for model in results.models:
        if not any(p.model == model.key and p.status == "ok" for p in results.results):
            continue
        name = f"{FIGURES}/predictions-{model.key}.png"
        predictions = figs.read_predictions(run_dir, model.key, test_keys)
        if predictions:
            path = run_dir / name
            _, error = _draw(name, lambda: figs.predictions_figure(results, model.key, predictions, path))  # noqa: B023
            if error:
                lines.append(error)
                continue
        elif (run_dir / name).exists():
            log.info("%s: no prediction files in %s; keeping the figure drawn earlier", model.label, run_dir)
        else:
            log.warning("%s: no prediction files in %s; no predictions figure", model.label, run_dir)
            continue
        lines.append(_link(f"{model.label}: predictions against MOS", name))
    if not lines:
        return []
    fit = results.suite.correlation == "logistic4"
    caption = (
        "One dot per image: the model's prediction, on its own scale, against the MOS rescaled to [1, 5]. "
        "Red ticks along the bottom mark images the model could not score, at their MOS."
        + (" The curve is the 4-parameter logistic fitted for PLCC." if fit else "")
    )
    return ["### Predictions against MOS\n\n" + caption + "\n\n" + "\n\n".join(lines)]


def _gallery_blocks(results: Results, predictions: dict[str, Any], run_dir: Path) -> list[str]:
    misses = gallery.galleries(results, predictions)
    lines = []
    for model in results.models:
        mine = {test: found for (key, test), found in misses.items() if key == model.key}
        if not mine:
            continue
        name = f"{FIGURES}/gallery-{model.key}.png"
        _, error = _draw(name, lambda: figs.gallery_figure(results, model.key, mine, run_dir / name))  # noqa: B023
        lines.append(error or _link(f"{model.label}: largest rank errors", name))
    if not lines:
        return []
    return ["### Failure gallery\n\n"
            f"Per model and test set, the {gallery.GALLERY_SIZE} images with the largest rank error after the fit "
            "(the prediction's rank among the model's predictions against the image's rank by MOS; 1 = best), "
            "with the MOS, the prediction (→ mapped onto the MOS scale by the fitted logistic) and, for reasoning "
            "models, the first line of the reasoning. Thumbnails are made from the images on disk when the "
            "leaderboard is drawn; `leaderboard.html` shows them larger, with every number.\n\n"
            + "\n\n".join(lines)]


def _distortion_blocks(results: Results, run_dir: Path) -> dict[str, str]:
    """The heat map of each test set with distortion types, by test set key."""
    blocks = {}
    for test in results.test_sets:
        name = f"{FIGURES}/distortions-{test.key}.png"
        figure, error = _draw(name, lambda: figs.distortion_figure(results, test.key, run_dir / name))  # noqa: B023
        if error:
            blocks[test.key] = error
        elif figure is not None:
            blocks[test.key] = _link(f"{test.label}: SRCC per distortion type", name)
    return blocks


def _cost_blocks(results: Results, run_dir: Path) -> list[str]:
    name = f"{FIGURES}/accuracy-cost.png"
    figure, error = _draw(name, lambda: figs.accuracy_cost_figure(results, run_dir / name))
    if error:
        return ["### Accuracy against cost\n\n" + error]
    if figure is None:
        return []
    points, left_out = figs.cost_points(results)
    caption = "Filled: measured in this run. "
    reported = [p for p in points if p.reported]
    if reported:
        bases = sorted({p.basis for p in reported})
        caption += (f"Hollow: {figs.REPORTED}, at the parameter count the paper states, accuracy being "
                    f"{' / '.join(bases)}; the paper gives no absolute latency, so reported points appear "
                    "against parameters only. ")
    if left_out:
        caption += "Not shown: " + "; ".join(left_out) + "."
    return ["### Accuracy against cost\n\n" + _link("Accuracy against parameters and ms/image", name) + "\n\n"
            + caption.strip()]


def _comparison_blocks(results: Results, run_dir: Path) -> list[str]:
    rows = figs.comparison_rows(results)
    if not rows:
        return []
    name = f"{FIGURES}/measured-vs-reported.png"
    _, error = _draw(name, lambda: figs.reported_comparison_figure(results, run_dir / name))
    if error:
        return ["## Measured against reported\n\n" + error]
    bases = sorted({r.reported.basis for r in rows})
    caption = (f"Filled bars: measured in this run, mean over the test sets; hatched bars: {figs.REPORTED}, "
               f"{' / '.join(bases)}.")
    return ["## Measured against reported\n\n" + _link("Measured against reported", name) + "\n\n" + caption]


def _scope_lines(results: Results) -> list[str]:
    """Which processes and devices scored the run, and which pairs a partial or merged run holds."""
    lines = []
    launch = results.launch
    if launch and launch.processes == 1 and launch.per_process:
        lines.append(f"Scored by one process on {launch.per_process[0].device}")
    elif launch:
        where = f" of {launch.hosts} machines" if launch.hosts > 1 else ""
        devices = f"{launch.devices} device{'s' if launch.devices > 1 else ''}"
        lines.append(f"Scored by {launch.processes} processes on {devices}{where}; "
                     "efficiency measured by one process while the others waited")
    selection = results.selection
    if selection:
        chosen = {"models": selection.models, "tests": selection.tests, "pairs": selection.pairs}
        how = ", ".join(f"--{key} {value if isinstance(value, str) else ','.join(value)}"
                        for key, value in chosen.items() if value)
        lines.append(f"Partial run: holds {len(selection.held)} of the suite's {selection.suite_pairs} "
                     f"(model, test set) pairs{f' ({how})' if how else ''}; the others show as not run")
    for source in results.merged_from or []:
        processes = source.launch.processes if source.launch else None
        how = f"scored by {processes} process{'es' if processes > 1 else ''}" if processes else "itself a merge"
        lines.append(f"Merged from `{source.folder}`: {len(source.held)} pair(s) {how}, "
                     f"created {source.created}")
    return lines
