"""A plugin's keyword parameters, read from its ``__init__`` signature.

Models, datasets and trainers take their parameters as explicit keyword
arguments (scikit-learn style) and store each one unchanged under its own name,
so the settings of a configured object can be read back from its signature
(:func:`constructor_params`, scikit-learn's ``get_params``): that is what
results record. The registry checks user options against the same signature
(:mod:`iqabench.registry.options`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any


def init_signatures(cls: type) -> list[tuple[type, inspect.Signature]]:
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
    for _, signature in init_signatures(cls):
        for param in signature.parameters.values():
            if param.name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                accepted.setdefault(param.name, param.default)
    return accepted


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
