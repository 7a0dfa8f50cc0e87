"""Keyword options for plugin classes, checked against their ``__init__``.

Models, datasets and trainers take their parameters as explicit keyword
arguments (scikit-learn style). Suites and ``-o key=value`` flags are checked
against that signature so a misspelled option is an error naming the valid
ones, not a silently ignored setting.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any

import yaml

from iqabench.errors import UnknownNameError


def accepted_options(cls: type) -> dict[str, Any]:
    """Map each keyword ``cls.__init__`` accepts to its default (``inspect._empty`` if required)."""
    signature = inspect.signature(cls.__init__)
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
    }


def check_options(cls: type, options: dict[str, Any], what: str, reserved: Iterable[str] = ()) -> None:
    """Raise if ``options`` holds a key that ``cls`` does not accept."""
    accepted = accepted_options(cls)
    signature = inspect.signature(cls.__init__)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    valid = sorted(set(accepted) - set(reserved))
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, valid, n=2, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(f"{what} has no option {key!r}.{hint} Valid options: {', '.join(valid) or '(none)'}.")


def parse_option_flags(flags: Iterable[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into a dict; values are read as YAML scalars (``true``, ``0.5``, ``a``)."""
    options: dict[str, Any] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key:
            raise UnknownNameError(f"option {flag!r} is not of the form key=value (e.g. -o checkpoint=/path/to/dir).")
        options[key.strip()] = yaml.safe_load(value) if value != "" else ""
    return options
