"""Keyword options of plugin classes, checked against their ``__init__``.

Models, datasets and trainers take their parameters as explicit keyword
arguments (scikit-learn style). Suites and ``-o key=value`` flags are checked
against that signature before any work starts: a misspelled option is an error
naming the valid ones, and a value of the wrong type (``block_size: "abc"``) is
an error naming the expected type, not a ``TypeError`` an hour into a run.

Because every plugin stores each ``__init__`` parameter under the same name,
:func:`constructor_params` can read a configured object's settings back from
its signature (scikit-learn's ``get_params``); that is what results record.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Iterable
from typing import Any

import yaml

from iqabench.errors import IQABenchError, UnknownNameError, did_you_mean


class OptionValueError(IQABenchError):
    """An option whose value does not have the type its constructor declares."""


def _init_signatures(cls: type) -> list[tuple[type, inspect.Signature]]:
    """The ``__init__`` signatures whose keywords ``cls`` accepts, most specific first.

    A subclass whose ``__init__`` changes a few defaults and passes ``**options`` on
    accepts its own keywords plus those of the next ``__init__`` up the hierarchy.
    """
    found = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        signature = inspect.signature(klass.__init__)
        found.append((klass, signature))
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return found


def accepted_options(cls: type) -> dict[str, Any]:
    """Map each keyword ``cls.__init__`` accepts to its default (``inspect.Parameter.empty`` if required)."""
    accepted: dict[str, Any] = {}
    for _, signature in _init_signatures(cls):
        for param in signature.parameters.values():
            if param.name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                accepted.setdefault(param.name, param.default)
    return accepted


@functools.cache
def _annotations(cls: type) -> dict[str, Any]:
    """Resolved type hints of the accepted keywords; unresolvable ones are left out (not checked)."""
    hints: dict[str, Any] = {}
    for klass, _ in _init_signatures(cls):
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


def constructor_params(obj: object, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The configured value of every ``__init__`` keyword of ``obj`` (scikit-learn's ``get_params``).

    Plugins store each parameter unchanged under its own name; one that does not
    is a bug in the plugin, reported here by name rather than recorded wrongly.
    """
    params = {}
    for name in accepted_options(type(obj)):
        if name in exclude:
            continue
        try:
            params[name] = getattr(obj, name)
        except AttributeError:
            raise AttributeError(
                f"{type(obj).__name__} takes the option {name!r} but does not store it as `self.{name}`; "
                "plugins keep every __init__ parameter under its own name so results can record it."
            ) from None
    return params


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
