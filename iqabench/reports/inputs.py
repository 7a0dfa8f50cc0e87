"""What each model was given: its images per test set and where its weights come from.

A protocol can give models different inputs (KonIQ at 512x384 for the Q-Insight family, the paper's own size for
others) and some rows are scored from a released checkpoint rather than trained here. A reader comparing rows needs
both, so ``leaderboard.md`` and ``leaderboard.html`` draw the same table from :func:`inputs_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

from iqabench.reports.schema import Results


@dataclass(frozen=True)
class InputsTable:
    headers: list[str]
    rows: list[list[str]]
    #: numbered sources of the choices (``[1] ...``) and why a released checkpoint is not retrained
    notes: list[str]


def inputs_table(results: Results) -> InputsTable | None:
    """The table, or None when every model got every test set as distributed and no row needs a weights note."""
    pairs = {(p.model, p.test_set): p.input for p in results.results}
    chosen = any(given is not None and (given.source or given.dataset_options or any(given.resize.values()))
                 for given in pairs.values())
    notes_of = {m.key: m.weights.note for m in results.models if m.weights is not None and m.weights.note}
    if not chosen and not notes_of:
        return None
    sources: list[str] = []
    rows = []
    for model in results.models:
        row = [model.label]
        for test in results.test_sets:
            given = pairs.get((model.key, test.key))
            if given is None:
                row.append("—")
                continue
            parts = [f"{key}={value}" for key, value in given.dataset_options.items()]
            if given.resize.get("shorter_side"):
                parts.append(f"shorter side {given.resize['shorter_side']}")
            if given.resize.get("max_side"):
                parts.append(f"max side {given.resize['max_side']}")
            cell = ", ".join(parts) or "as distributed"
            if given.source:
                if given.source not in sources:
                    sources.append(given.source)
                cell += f" [{sources.index(given.source) + 1}]"
            row.append(cell)
        rows.append(row)
    notes = [f"[{i}] {source}" for i, source in enumerate(sources, 1)]
    notes += [f"{m.label}: {notes_of[m.key]}" for m in results.models if m.key in notes_of]
    return InputsTable(["Model"] + [t.label for t in results.test_sets], rows, notes)
