"""``leaderboard.html``: the run's leaderboard as one self-contained web page.

The same numbers as ``leaderboard.md``, from the same ``results.json`` and prediction files, in a page that
needs nothing else (no network, no other file): sortable tables (click a header), the significance marks, the
per-distortion heat maps, the failure galleries, the figures, and one scatter of predictions against MOS per
(model, test set) where hovering a point shows the image and its numbers. Images appear only as thumbnails made
from the files on disk when the page is drawn (:mod:`iqabench.reports.gallery`), at most
:data:`HOVER_THUMBNAILS` per test set for the scatters, so the page stays small and copies nothing of a dataset
beyond that.

The page is deterministic: drawing it twice from the same run gives the same bytes.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from scipy import stats

from iqabench.reports import figures as figs
from iqabench.reports import gallery
from iqabench.reports.inputs import inputs_table
from iqabench.reports.schema import Results
from iqabench.reports.significance import PLCC_TESTS, TIED, significance_legend, tied_models
from iqabench.run.predictions import Prediction

#: thumbnails embedded per test set for the scatters' hover (the gallery images first)
HOVER_THUMBNAILS = 400
#: points drawn per scatter; a larger test set is thinned evenly (the counts say so)
SCATTER_POINTS = 2000
#: longest side of the hover thumbnails
HOVER_SIZE = 112


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _sort_value(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no "</script>" can end it early)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def _rank_best(values: Sequence[float | None]) -> set[int]:
    present = [v for v in values if v is not None]
    if not present:
        return set()
    best = max(present)
    return {i for i, v in enumerate(values) if v == best}


# ----------------------------------------------------------------------------------------------- sections


def _accuracy(results: Results) -> str:
    tests = results.test_sets
    head = "".join(f'<th class="num" data-sort="num">{_e(t.label)} PLCC</th>'
                   f'<th class="num" data-sort="num">{_e(t.label)} SRCC</th>' for t in tests)
    if len(tests) > 1:
        head += '<th class="num" data-sort="num">Mean PLCC</th><th class="num" data-sort="num">Mean SRCC</th>'
    best = {}
    for test in tests:
        for metric in ("plcc", "srcc"):
            values = [None if (p := results.pair(m.key, test.key)) is None or p.flags else p.metric(metric)
                      for m in results.models]
            best[(test.key, metric)] = {results.models[i].key for i in _rank_best(values)}
    rows = []
    for model in results.models:
        weights = model.weights
        cells = [f'<td class="label">{_e(model.label)}</td>',
                 f'<td class="weights" title="{_e(weights.note if weights and weights.note else "")}">'
                 f'{_e(weights.kind if weights else "—")}</td>']
        for test in tests:
            pair = results.pair(model.key, test.key)
            ties = tied_models(results, test.key)
            for metric in ("plcc", "srcc"):
                value = None if pair is None else pair.metric(metric)
                note = ""
                if pair is None or pair.status == "missing":
                    note = "not run"
                elif pair.status == "failed":
                    note = "failed"
                elif pair.flags:
                    note = "; ".join(sorted(pair.flags))
                classes = ["num"]
                if value is not None and model.key in best[(test.key, metric)]:
                    classes.append("best")
                mark = f'<span class="tied" title="not significantly different from the best">{TIED}</span>' \
                    if model.key in ties[metric] else ""
                text = _num(value) if value is not None else (note or "—")
                cells.append(f'<td class="{" ".join(classes)}" data-value="{_sort_value(value)}" '
                             f'data-test="{_e(test.key)}" data-metric="{metric}" title="{_e(note)}">{_e(text)}{mark}'
                             "</td>")
        if len(tests) > 1:
            for metric in ("plcc", "srcc"):
                value = figs.mean_accuracy(results, model.key, metric)
                cells.append(f'<td class="num" data-value="{_sort_value(value)}">{_num(value)}</td>')
        rows.append(f'<tr data-model="{_e(model.key)}">' + "".join(cells) + "</tr>")
    legend = significance_legend(results)
    return (f'<table class="sortable" id="accuracy"><thead><tr><th data-sort="text">Model</th>'
            f'<th data-sort="text">Weights</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            + (f'<p class="legend">{_e(legend)}</p>' if legend else "")
            + '<p class="legend">Bold: best of its column. Click a column header to sort.</p>')


def _significance(results: Results) -> str:
    if not results.significance:
        return ""
    labels = {m.key: m.label for m in results.models}
    spec = results.suite.significance
    blocks = []
    for test in results.test_sets:
        record = results.significance.for_test(test.key)
        if record is None:
            continue
        rows = []
        for pair in record.pairs:
            for metric in ("plcc", "srcc"):
                diff = getattr(pair, metric)
                interval = "" if diff.low is None else f"[{diff.low:+.3f}, {diff.high:+.3f}]"
                rows.append(
                    f"<tr><td>{metric.upper()}</td><td>{_e(labels.get(pair.a, pair.a))}</td>"
                    f"<td>{_e(labels.get(pair.b, pair.b))}</td><td class=\"num\">{pair.images}</td>"
                    f'<td class="num" data-value="{_sort_value(diff.difference)}">'
                    f"{'—' if diff.difference is None else f'{diff.difference:+.3f}'}</td><td>{interval}</td>"
                    + "".join(f'<td class="num" data-value="{_sort_value(p)}">{_p(p)}</td>'
                              for p in (diff.p_bootstrap, diff.p_williams, diff.p_f_test))
                    + f"<td>{_e(diff.flag or '')}</td></tr>")
        verdicts = []
        for metric in ("plcc", "srcc"):
            ranking = getattr(record, metric)
            if ranking.best is None:
                continue
            tied = [labels.get(o.model, o.model) for o in ranking.others if o.tied]
            test_name = "paired bootstrap" if metric == "srcc" else PLCC_TESTS[ranking.test]
            verdicts.append(f"<li>{metric.upper()} ({_e(test_name)}): best {_e(labels.get(ranking.best))}; "
                            f"not significantly different: {_e(', '.join(tied) or 'none')}</li>")
        blocks.append(
            f"<h3>{_e(test.label)}</h3><ul>{''.join(verdicts)}</ul>"
            '<table class="sortable"><thead><tr><th data-sort="text">Metric</th><th data-sort="text">A</th>'
            '<th data-sort="text">B</th><th data-sort="num">Images</th><th data-sort="num">A − B</th>'
            '<th data-sort="text">95% CI (bootstrap)</th><th data-sort="num">p bootstrap</th>'
            "<th data-sort=\"num\">p Williams</th><th data-sort=\"num\">p F-test</th><th data-sort=\"text\">Note"
            f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    if not blocks:
        return ""
    level = f"α = {spec.alpha:g}, {spec.correction} correction" if spec else ""
    return f"<h2>Significance ({_e(level)})</h2>" + "".join(blocks)


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "&lt;0.001" if value < 0.001 else f"{value:.3f}"


def _colour(value: float) -> str:
    r, g, b, _ = matplotlib.colormaps["RdYlGn"]((value + 1) / 2)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _distortions(results: Results) -> str:
    blocks = []
    for test in results.test_sets:
        labels, types, values = figs.distortion_matrix(results, test.key)
        if not labels or not types:
            continue
        head = "".join(f'<th class="num" data-sort="num">{_e(t)}</th>' for t in types)
        rows = []
        for label, row in zip(labels, values):
            cells = "".join(
                '<td class="num heat" data-value="" style="background:#d9d9d9">—</td>' if np.isnan(v) else
                f'<td class="num heat" data-value="{float(v)!r}" style="background:{_colour(float(v))}">{v:.3f}</td>'
                for v in row)
            rows.append(f'<tr><td class="label">{_e(label)}</td>{cells}</tr>')
        blocks.append(f"<h3>{_e(test.label)}: SRCC per distortion type</h3>"
                      f'<div class="wide"><table class="sortable heatmap"><thead><tr><th data-sort="text">Model</th>'
                      f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    if not blocks:
        return ""
    return ("<h2>Per distortion type</h2><p class=\"legend\">SRCC over the images of each type as the dataset labels "
            "them, coloured from −1 (red) to 1 (green); PLCC per type is in <code>results.json</code>.</p>"
            + "".join(blocks))


def _scatter(model_key: str, test_index: int, rows: list[Prediction], pair: Any) -> tuple[str, list[list[Any]]]:
    """An SVG scatter of one model's predictions against MOS, and the per-point data its hover reads."""
    scored = [(i, r) for i, r in enumerate(rows) if r.prediction is not None]
    if len(scored) < 2:
        return "<p>fewer than two scored images</p>", []
    pred = np.array([r.prediction for _, r in scored])
    mos = np.array([r.mos for _, r in scored])
    fitted = gallery._fitted(pair.sign * pred, mos)
    predicted_rank = stats.rankdata(-pair.sign * pred)
    mos_rank = stats.rankdata(-mos)
    step = max(1, math.ceil(len(scored) / SCATTER_POINTS))
    width, height, pad = 340, 250, 34
    x0, x1 = min(1.0, mos.min()) - 0.1, max(5.0, mos.max()) + 0.1
    y0, y1 = float(pred.min()), float(pred.max())
    if y1 <= y0:
        y1 = y0 + 1.0
    points, data = [], []
    for k in range(0, len(scored), step):
        row, record = scored[k]
        x = pad + (record.mos - x0) / (x1 - x0) * (width - pad - 8)
        y = height - pad - (record.prediction - y0) / (y1 - y0) * (height - pad - 8)
        points.append(f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3" data-i="{len(data)}"/>')
        data.append([row, record.mos, record.prediction, None if fitted is None else float(fitted[k]),
                     int(round(predicted_rank[k])), int(round(mos_rank[k])), len(scored)])
    thinned = f" (every {step}th of {len(scored)} shown)" if step > 1 else ""
    axes = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - 8}" y2="{height - pad}" class="axis"/>'
            f'<line x1="{pad}" y1="8" x2="{pad}" y2="{height - pad}" class="axis"/>'
            f'<text x="{(width + pad) / 2}" y="{height - 6}" class="axislabel">MOS (rescaled to [1, 5])</text>'
            f'<text x="10" y="{(height - pad) / 2}" class="axislabel" transform="rotate(-90 10 {(height - pad) / 2})">'
            "prediction</text>"
            + "".join(f'<text x="{pad + (v - x0) / (x1 - x0) * (width - pad - 8):.1f}" y="{height - pad + 12}" '
                      f'class="tick">{v:g}</text>' for v in (1, 2, 3, 4, 5))
            + f'<text x="{pad - 3}" y="{height - pad}" class="tick end">{y0:.3g}</text>'
            f'<text x="{pad - 3}" y="14" class="tick end">{y1:.3g}</text>')
    svg = (f'<svg class="scatter" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'data-test="{test_index}" data-model="{_e(model_key)}" role="img">{axes}{"".join(points)}</svg>'
           f'<div class="caption">{len(scored)} of {len(rows)} images scored{thinned}</div>')
    return svg, data


def _galleries(results: Results, misses: dict[tuple[str, str], list[gallery.Miss]]) -> str:
    labels = {m.key: m.label for m in results.models}
    blocks = []
    for (model_key, test_key), found in misses.items():
        test = results.test_set(test_key)
        tiles = []
        for miss in found:
            uri = gallery.thumbnail_data_uri(gallery.image_path(test, miss.image))
            picture = (f'<img src="{uri}" alt="{_e(miss.image)}">' if uri else
                       '<div class="missing">image not on disk</div>')
            fitted = "" if miss.fitted is None else f" → {miss.fitted:.2f}"
            reasoning = f'<div class="reasoning">{_e(miss.reasoning)}</div>' if miss.reasoning else ""
            tiles.append(f'<figure class="tile" data-row="{miss.row}">{picture}<figcaption>'
                         f'<div class="name">{_e(miss.image)}</div>'
                         f'<div>MOS <span class="mos">{miss.mos:.3f}</span> · pred <span class="pred">'
                         f"{miss.prediction:.4g}</span>{fitted}</div>"
                         f"<div>rank {miss.predicted_rank} vs {miss.mos_rank} of {miss.scored}</div>{reasoning}"
                         "</figcaption></figure>")
        blocks.append(f"<h3>{_e(labels.get(model_key, model_key))} on {_e(test.label)}</h3>"
                      f'<div class="gallery">{"".join(tiles)}</div>')
    if not blocks:
        return ""
    return (f"<h2>Failure galleries</h2><p class=\"legend\">The {gallery.GALLERY_SIZE} images with the largest rank "
            "error after the fit (rank among the model's predictions vs rank by MOS, 1 = best), with the MOS, the "
            "prediction (→ mapped onto the MOS scale by the fitted logistic) and, for reasoning models, the first "
            "line of the reasoning.</p>" + "".join(blocks))


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figures(run_dir: Path, names: Sequence[tuple[str, str]]) -> str:
    shown = [f'<figure><img class="figure" src="{_png(run_dir / name)}" alt="{_e(alt)}"><figcaption>{_e(alt)}'
             "</figcaption></figure>" for name, alt in names if (run_dir / name).is_file()]
    return "".join(shown)


def _inputs(results: Results) -> str:
    table = inputs_table(results)
    if table is None:
        return ""
    head = "".join(f'<th data-sort="text">{_e(h)}</th>' for h in table.headers)
    rows = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    notes = "".join(f"<li>{_e(note)}</li>" for note in table.notes)
    return ("<h2>Inputs and weights</h2><p class=\"legend\">Each model's images per test set (the dataset options "
            "and resize in force, before the model's own preprocessing), the source of each choice, and why a "
            "released checkpoint is not retrained.</p>"
            f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            + (f"<ul class=\"legend\">{notes}</ul>" if notes else ""))


def _efficiency(results: Results) -> str:
    rows = []
    for model in results.models:
        eff = model.efficiency
        if not eff:
            continue
        rows.append(f'<tr><td class="label">{_e(model.label)}</td>'
                    f'<td class="num" data-value="{eff.parameters or 0}">{eff.parameters or 0:,}</td>'
                    f'<td class="num" data-value="{eff.batch_size or 0}">{eff.batch_size}</td>'
                    f'<td class="num" data-value="{_sort_value(eff.ms_per_image)}">{_num(eff.ms_per_image, 2)}</td>'
                    f'<td class="num" data-value="{_sort_value(eff.images_per_second)}">'
                    f"{_num(eff.images_per_second, 1)}</td><td>{_e(eff.input_resolution)}</td>"
                    f"<td>{_e(eff.device_name)} / {_e(eff.dtype)}</td></tr>")
    if not rows:
        return ""
    return ('<h2>Efficiency</h2><table class="sortable"><thead><tr><th data-sort="text">Model</th>'
            '<th data-sort="num">Parameters</th><th data-sort="num">Batch</th><th data-sort="num">ms / image</th>'
            '<th data-sort="num">images / s</th><th data-sort="text">Input</th><th data-sort="text">Device / dtype'
            f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


# ----------------------------------------------------------------------------------------------- the page


def render_html(results: Results, run_dir: str | Path, predictions: dict[str, dict[str, list[Prediction]]]) -> str:
    """The page's HTML, from ``results.json``, the prediction files and the figures already drawn in ``run_dir``."""
    run_dir = Path(run_dir)
    suite = results.suite
    misses = gallery.galleries(results, predictions)
    tests_data, scatters = [], []
    for index, test in enumerate(results.test_sets):
        images = next(([r.image for r in predictions[m][test.key]] for m in predictions
                       if test.key in predictions[m]), [])
        wanted = [miss.row for (_, key), found in misses.items() if key == test.key for miss in found]
        if images:
            spread = np.linspace(0, len(images) - 1, min(len(images), HOVER_THUMBNAILS)).round().astype(int)
            wanted += [int(i) for i in spread]
        thumbs = {}
        for row in dict.fromkeys(wanted):
            if len(thumbs) >= HOVER_THUMBNAILS:
                break
            uri = gallery.thumbnail_data_uri(gallery.image_path(test, images[row]), HOVER_SIZE)
            if uri:
                thumbs[row] = uri
        tests_data.append({"key": test.key, "label": test.label, "images": images,
                           "thumbs": {str(k): v for k, v in thumbs.items()}})
        panels = []
        for model in results.models:
            pair = results.pair(model.key, test.key)
            rows = predictions.get(model.key, {}).get(test.key)
            if pair is None or pair.status != "ok" or not rows:
                continue
            svg, data = _scatter(model.key, index, rows, pair)
            scatters.append({"test": index, "model": model.key, "points": data})
            panels.append(f'<div class="panel" data-scatter="{len(scatters) - 1}"><h4>{_e(model.label)}</h4>{svg}'
                          "</div>")
        if panels:
            scatters_html = "".join(panels)
            tests_data[-1]["html"] = f"<h3>{_e(test.label)}</h3><div class=\"panels\">{scatters_html}</div>"
    scatter_section = "".join(t.pop("html", "") for t in tests_data)
    prov = results.provenance
    description = "".join(f"<p>{_e(text.strip())}</p>" for text in (suite.description,) if text)
    notes = f'<p class="note"><b>Note:</b> {_e(suite.notes.strip())}</p>' if suite.notes else ""
    fit = ("PLCC after a VQEG 4-parameter logistic fit" if suite.correlation == "logistic4"
           else "PLCC on raw predictions (no fitting)")
    counts = ", ".join(f"{t.label} {t.split} ({t.count} images)" for t in results.test_sets)
    body = (
        f"<h1>{_e(suite.name)}</h1>{description}{notes}"
        f"<p>Protocol: <code>{_e(suite.protocol)}</code>. {_e(fit)}; SRCC on ranks. Lower-is-better models are "
        f"negated before correlating. Test sets: {_e(counts)}.</p>"
        f"<h2>Accuracy</h2>{_accuracy(results)}"
        + _significance(results)
        + _distortions(results)
        + (f"<h2>Predictions against MOS</h2><p class=\"legend\">One dot per image; hover a dot for the image and "
           f"its numbers.</p>{scatter_section}" if scatter_section else "")
        + _galleries(results, misses)
        + _inputs(results)
        + _efficiency(results)
        + _figures(run_dir, [("figures/accuracy-cost.png", "Accuracy against cost"),
                             ("figures/measured-vs-reported.png", "Measured against reported")])
        + "<h2>Provenance</h2><ul>"
        f"<li>Command: <code>{_e(prov.command)}</code></li>"
        f"<li>Suite: <code>{_e(suite.file)}</code> (sha256 {_e(suite.sha256[:16])}…), seed {suite.seed}, device "
        f"{_e(suite.device)}, dtype {_e(suite.dtype)}, batch size {suite.batch_size}</li>"
        f"<li>Git commit: {_e(prov.git_commit or 'unknown')}; created {_e(prov.created)}</li>"
        f"<li>{_e(prov.platform)}, Python {_e(prov.python)}</li></ul>"
    )
    data = {"tests": tests_data, "scatters": scatters}
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{_e(suite.name)}: leaderboard</title><style>{_CSS}</style></head><body>{body}"
        '<div id="tip" hidden></div>'
        f'<script type="application/json" id="data">{_script_json(data)}</script><script>{_JS}</script>'
        "</body></html>\n"
    )


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h4{margin:.2em 0;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #ddd;padding:.25em .5em}
th{background:#f4f4f4;cursor:pointer;user-select:none;white-space:nowrap}th.asc::after{content:" \\25B2"}
th.desc::after{content:" \\25BC"}td.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold}
.tied{color:#a15c00;margin-left:.1em}.legend,.caption{color:#555;font-size:.85em}.note{background:#fff8e1;padding:.5em}
.wide{overflow-x:auto}.panels{display:flex;flex-wrap:wrap;gap:1em}.panel{border:1px solid #eee;padding:.3em}
svg.scatter .pt{fill:#1f77b4;fill-opacity:.6;cursor:pointer}svg.scatter .pt:hover{fill:#d62728;fill-opacity:1}
svg.scatter .axis{stroke:#888}svg.scatter .axislabel{font-size:10px;text-anchor:middle;fill:#444}
svg.scatter .tick{font-size:9px;text-anchor:middle;fill:#666}svg.scatter .tick.end{text-anchor:end}
#tip{position:fixed;z-index:10;background:#fff;border:1px solid #999;box-shadow:0 2px 8px rgba(0,0,0,.2);
padding:.4em;font-size:.8em;pointer-events:none;max-width:260px}#tip img{display:block;max-width:240px}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.tile{margin:0;width:150px;font-size:.75em}.tile img{max-width:150px;
display:block}.tile .name{color:#666;word-break:break-all}.tile .reasoning{font-style:italic;color:#444}
.missing{width:128px;height:96px;background:#ddd;display:flex;align-items:center;justify-content:center;color:#555}
img.figure{max-width:100%}
"""

_JS = """
(function(){
"use strict";
var data=JSON.parse(document.getElementById("data").textContent);
function cellValue(row,index,numeric){
  var cell=row.children[index];if(!cell){return null;}
  if(numeric){var v=cell.getAttribute("data-value");
    if(v===null){v=cell.textContent.replace(/[^0-9eE+\\-.]/g,"");}
    if(v===""){return null;}var n=parseFloat(v);return isNaN(n)?null:n;}
  return cell.textContent.trim().toLowerCase();
}
document.querySelectorAll("table.sortable").forEach(function(table){
  table.querySelectorAll("thead th").forEach(function(th,index){
    th.addEventListener("click",function(){
      var numeric=th.getAttribute("data-sort")==="num";
      var ascending=!th.classList.contains("asc");
      table.querySelectorAll("thead th").forEach(function(o){o.classList.remove("asc","desc");});
      th.classList.add(ascending?"asc":"desc");
      var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=cellValue(a,index,numeric),y=cellValue(b,index,numeric);
        if(x===null&&y===null){return 0;}if(x===null){return 1;}if(y===null){return -1;}
        var c=x<y?-1:x>y?1:0;return ascending?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
var tip=document.getElementById("tip");
function fmt(v,d){return v===null||v===undefined?"\\u2014":Number(v).toFixed(d);}
function text(tag,content){var e=document.createElement(tag);e.textContent=content;return e;}
document.querySelectorAll(".panel").forEach(function(panel){
  var scatter=data.scatters[Number(panel.getAttribute("data-scatter"))];
  var test=data.tests[scatter.test];
  panel.querySelectorAll(".pt").forEach(function(pt){
    pt.addEventListener("mouseenter",function(event){
      var p=scatter.points[Number(pt.getAttribute("data-i"))];
      tip.replaceChildren();
      var thumb=test.thumbs[String(p[0])];
      if(thumb){var img=document.createElement("img");img.src=thumb;img.alt=test.images[p[0]];tip.appendChild(img);}
      tip.appendChild(text("div",test.images[p[0]]));
      tip.appendChild(text("div","MOS "+fmt(p[1],3)+" \\u00b7 prediction "+Number(p[2]).toPrecision(4)+
        (p[3]===null?"":" \\u2192 "+fmt(p[3],2))));
      tip.appendChild(text("div","rank "+p[4]+" vs "+p[5]+" of "+p[6]));
      if(!thumb){tip.appendChild(text("div","(no thumbnail: image not on disk or beyond the page's budget)"));}
      tip.hidden=false;tip.style.left=(event.clientX+14)+"px";tip.style.top=(event.clientY+14)+"px";
    });
    pt.addEventListener("mouseleave",function(){tip.hidden=true;});
  });
});
})();
"""


def write_html(results: Results, run_dir: str | Path, predictions: dict[str, dict[str, list[Prediction]]]) -> Path:
    """Write ``leaderboard.html`` into ``run_dir`` (after the figures it embeds); return its path."""
    from iqabench.files import atomic_write_text

    target = Path(run_dir) / "leaderboard.html"
    atomic_write_text(target, render_html(results, run_dir, predictions))
    return target
