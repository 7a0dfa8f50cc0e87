"""The efficiency study's markdown: conditions first, then costs, ratios to the baseline and stage breakdowns.

Rendered from the report dict of :func:`iqabench.efficiency.bench.run_bench` alone (or its
JSON), so the table can be re-rendered without measuring again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def _fmt(value: Any, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_markdown(report: dict[str, Any], *, notes: Sequence[str] = (), figure: str | None = None) -> str:
    """The efficiency leaderboard: conditions first, then costs, ratios and RALI-style stage breakdowns.

    ``figure`` is the file name of the Figure 6 layout (:func:`iqabench.reports.figures.efficiency_figure`), written
    beside the markdown and embedded after the cost table.
    """
    settings, provenance = report["settings"], report["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in provenance["versions"].items() if v and k in
                         ("iqabench", "torch", "transformers", "pillow", "numpy"))
    lines = [
        "# Efficiency: time, memory and parameters (paper section 5.4, Figure 6)",
        "",
        f"- Command: `{provenance['command']}`",
        f"- Device: {settings['device']} ({report['device_name']}); CPU: {report['cpu']}; "
        f"torch threads: {report['torch_threads']}; decode workers: {settings['num_workers']}",
        f"- dtype: {settings['dtype']} (per-model overrides in the Models table); batch sizes: "
        f"{', '.join(map(str, settings['batch_sizes']))}; new tokens (generative models): {settings['new_tokens']}",
        f"- Images: generated deterministic JPEGs of {settings['image_size'][0]}x{settings['image_size'][1]}; "
        f"warm-up calls {settings['warmup']}, timed repeats {settings['repeats']} (median)",
        f"- Versions: {versions}; Python {provenance['python']}; CUDA {provenance['cuda'] or 'none'}; "
        f"commit {provenance['git_commit'] or 'unknown'}; created {provenance['created']}",
        *[f"- {note}" for note in notes],
        "",
        "## Models",
        "",
    ]
    model_rows = []
    for m in report["models"]:
        weights = "random weights: timing only" if m.get("random_weights") else ("-" if m.get("error") else "trained")
        size = {True: "yes", False: "no (reduced)", None: "-"}[m.get("real_size")]
        model_rows.append([m["label"], _fmt(m.get("parameters"), ",d"), _fmt(m.get("released_parameters"), ",d"),
                           size, weights, m.get("dtype", "-"), m.get("input_resolution", "-"),
                           m.get("error") or "ok"])
    lines.append(tabulate(model_rows, headers=["model", "parameters (measured)", "parameters (released config)",
                                               "real size", "weights", "dtype", "input / pixel cap", "status"],
                          tablefmt="github"))
    lines += ["", "## Cost per batch size", ""]
    rows = []
    for m in report["models"]:
        for r in m["rows"]:
            rows.append([m["label"], r["batch_size"], _fmt(r.get("ms_per_image"), ".2f"),
                         _fmt(r.get("images_per_second"), ".2f"), _fmt(r.get("end_to_end_images_per_second"), ".2f"),
                         _fmt(r.get("peak_memory_mib"), ",.0f"), _fmt(r.get("new_tokens_per_image"), ".1f"),
                         r.get("error") or "ok"])
    lines.append(tabulate(rows, headers=["model", "batch", "ms/image", "images/s (model)",
                                         "images/s (end-to-end, incl. JPEG decode)", "peak memory (MiB)",
                                         "new tokens/image", "status"], tablefmt="github"))
    method = next((r.get("memory_method") for m in report["models"] for r in m["rows"] if r.get("memory_method")), "")
    if method:
        lines += ["", f"Peak memory: {method}, during the timed calls (weights included)."]
    if figure:
        lines += ["", f"![Peak memory and time per image at each batch size, as the paper's Figure 6]({figure})"]
    if report["ratios"]:
        reference, targets = report.get("reference"), report.get("targets") or []
        lines += ["", f"## Ratios vs {report['ratios'][0]['baseline']}", ""]
        ratio_rows = [[r["model"], r["batch_size"], _pct(r["time"]), _pct(r["end_to_end_time"]), _pct(r["memory"]),
                       _pct(r["parameters"]), _pct(r["released_parameters"]),
                       "yes" if r["comparable"] else "no: a model is not at its released size"]
                      for r in report["ratios"]]
        lines.append(tabulate(ratio_rows, headers=["model", "batch", "time (model)", "time (end-to-end)", "peak memory",
                                                   "parameters (measured)", "parameters (released configs)",
                                                   "comparable"], tablefmt="github"))
        if reference:
            lines += ["", f"Paper: {reference}"]
        lines += [f"Target: {target}" for target in targets]
    staged = [(m, r) for m in report["models"] for r in m["rows"] if r.get("stage_ms_per_image")]
    if staged:
        lines += ["", "## Where the time goes (serial cost per image)", ""]
        names = list(staged[0][1]["stage_ms_per_image"])
        stage_rows = []
        for m, r in staged:
            parts = {"decode": m.get("decode_ms_per_image", 0.0), **r["stage_ms_per_image"]}
            total = sum(parts.values())
            shares = (f"{v:.2f} ({100 * v / total:.1f}%)" for v in parts.values())
            stage_rows.append([m["label"], r["batch_size"], *shares, f"{total:.2f}"])
        lines.append(tabulate(stage_rows, headers=["model", "batch", "decode + prepare (1 process)",
                                                   *names, "sum (ms/image)"], tablefmt="github"))
        lines += ["", "Decode is JPEG decode plus the model's preprocessing in one process; in the end-to-end "
                      "column it runs in worker processes, overlapped with the model."]
    return "\n".join(lines) + "\n"
