"""Keyword options of plugin classes, checked against their ``__init__``.

Models, datasets and trainers take their parameters as explicit keyword
arguments (scikit-learn style). Suites and ``-o key=value`` flags are checked
against that signature before any work starts: a misspelled option is an error
naming the valid ones, and a value of the wrong type (``block_size: "abc"``) is
an error naming the expected type, not a ``TypeError`` an hour into a run.

The signature itself is read by :mod:`iqabench.contracts.params`, which also
reads a configured object's settings back (``constructor_params``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Iterable
from typing import Any

import yaml

from iqabench.contracts.params import accepted_options, init_signatures
from iqabench.errors import IQABenchError, UnknownNameError, did_you_mean


class OptionValueError(IQABenchError):
    """An option whose value does not have the type its constructor declares."""


@functools.cache
def _annotations(cls: type) -> dict[str, Any]:
    """Resolved type hints of the accepted keywords; unresolvable ones are left out (not checked)."""
    hints: dict[str, Any] = {}
    for klass, _ in init_signatures(cls):
        try:
            resolved = typing.get_type_hints(klass.__init__)
        except Exception:  # a hint naming a type that is not importable here: leave it unchecked
            resolved = {}
        for name, hint in resolved.items():
            if name != "return":
                hints.setdefault(name, hint)
    return hints


def _adapter(hint: Any):
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(hint)
    except Exception:  # a type pydantic cannot describe (a torch dtype, a plugin class): not checked
        return None


def _validate(adapter: Any, value: Any) -> Any:
    try:
        converted = adapter.validate_python(value)
    except Exception:
        if not (isinstance(value, str) and "," in value):
            raise
        # `-o rescale_range=3.9,88.4`: a comma-separated flag for a list or tuple option
        converted = adapter.validate_python([yaml.safe_load(part) for part in value.split(",")])
    if isinstance(value, bool) and not isinstance(converted, bool):
        raise ValueError("a yes/no value where a number or text is expected")
    return converted


def _type_name(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or str(hint).replace("typing.", "")


def check_options(cls: type, options: dict[str, Any], what: str, reserved: Iterable[str] = ()) -> dict[str, Any]:
    """Check ``options`` against ``cls.__init__``: names, then values against the annotations.

    Returns the options with values converted where the annotation asks for it
    (a YAML list given for a ``tuple[float, float]``); raises
    :class:`UnknownNameError` for an unknown name and :class:`OptionValueError`
    for a value of the wrong type.
    """
    accepted = accepted_options(cls)
    valid = sorted(set(accepted) - set(reserved))
    for key in options:
        if key not in accepted or key in reserved:
            raise UnknownNameError(
                f"{what} has no option {key!r}.{did_you_mean(key, valid, n=2, cutoff=0.6)} "
                f"Valid options: {', '.join(valid) or '(none)'}."
            )
    hints = _annotations(cls)
    checked = dict(options)
    for key, value in options.items():
        adapter = _adapter(hints[key]) if key in hints else None
        if adapter is None:
            continue
        try:
            checked[key] = _validate(adapter, value)
        except Exception:
            default = accepted[key]
            example = "" if default is inspect.Parameter.empty else f" (default: {default!r})"
            raise OptionValueError(
                f"{what}: option {key!r} must be {_type_name(hints[key])}{example}, "
                f"got {value!r} ({type(value).__name__})."
            ) from None
    return checked


def parse_option_flags(flags: Iterable[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into a dict; values are read as YAML (``true``, ``0.5``, ``a``, ``[1, 2]``)."""
    options: dict[str, Any] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise UnknownNameError(f"option {flag!r} is not of the form key=value (e.g. -o checkpoint=/path/to/dir).")
        try:
            options[key.strip()] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            raise OptionValueError(
                f"option {flag!r}: {value!r} is not a value iqabench can read; quote text, write lists as [a, b]."
            ) from None
    return options
