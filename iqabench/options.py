"""Keyword options for plugin classes, checked against their ``__init__``.

Models, datasets and trainers take their parameters as explicit keyword
arguments (scikit-learn style). Suites and ``-o key=value`` flags are checked
against that signature so a misspelled option is an error naming the valid
ones, not a silently ignored setting.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import yaml

from iqabench.errors import UnknownNameError, did_you_mean


def accepted_options(cls: type) -> dict[str, Any]:
    """Map each keyword ``cls.__init__`` accepts to its default (``inspect._empty`` if required).

    A subclass whose ``__init__`` changes a few defaults and passes ``**options`` on
    accepts its own keywords plus those of the next ``__init__`` up the hierarchy.
    """
    accepted: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        for param in parameters:
            if param.name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                accepted.setdefault(param.name, param.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted


def check_options(cls: type, options: dict[str, Any], what: str, reserved: Iterable[str] = ()) -> None:
    """Raise if ``options`` holds a key that ``cls`` does not accept."""
    accepted = accepted_options(cls)
    valid = sorted(set(accepted) - set(reserved))
    for key in options:
        if key not in accepted:
            raise UnknownNameError(
                f"{what} has no option {key!r}.{did_you_mean(key, valid, n=2, cutoff=0.6)} "
                f"Valid options: {', '.join(valid) or '(none)'}."
            )


def parse_option_flags(flags: Iterable[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into a dict; values are read as YAML scalars (``true``, ``0.5``, ``a``)."""
    options: dict[str, Any] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key:
            raise UnknownNameError(f"option {flag!r} is not of the form key=value (e.g. -o checkpoint=/path/to/dir).")
        options[key.strip()] = yaml.safe_load(value) if value != "" else ""
    return options
