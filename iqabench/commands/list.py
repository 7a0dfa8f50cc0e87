"""``iqabench list``: what the installed plugins provide."""

from __future__ import annotations

import argparse
import json

NAME = "list"
HELP = "list registered models, datasets, trainers and converters"
KINDS = {"models": "model", "datasets": "dataset", "trainers": "trainer", "converters": "converter"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=sorted(KINDS), help="one kind (default: all)")
    parser.add_argument("--json", action="store_true", help="a JSON list of objects with at least name and kind")


def _describe(entry) -> dict:
    info = entry.describe()
    cls = entry.cls
    if entry.kind == "model":
        traits = cls.traits
        info.update(lower_better=cls.lower_better, score_range=list(cls.score_range),
                    preprocessing=traits.preprocessing, generative=traits.generative, trainer=cls.trainer,
                    differentiable=traits.differentiable)
    elif entry.kind == "dataset":
        info.update(title=cls.title, folder=cls.default_dir, official_count=cls.official_count)
    elif entry.kind == "trainer":
        info.update(model=cls.model)
    return info


def _table(rows: list[list[str]], headers: list[str]) -> str:
    """Columns padded to their widest cell under a dashed rule (tabulate's "simple" look, without importing it:
    its wide-character tables take longer to load than this command takes to run)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    from iqabench.registry.discovery import default_registry

    registry = default_registry()
    kinds = [KINDS[args.what]] if args.what else list(KINDS.values())
    items = [_describe(entry) for kind in kinds for entry in registry.entries(kind)]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    for kind in kinds:
        rows = [[i["name"], i["plugin"], i["summary"]] for i in items if i["kind"] == kind]
        print(f"{kind}s:")
        print(_table(rows, ["name", "plugin", "summary"]) if rows else "  (none)")
        print()
    for plugin, reason in sorted(registry.load_failures.items()):
        print(f"skipped plugin {plugin}: {reason}")
    return 0
