"""Imports on first use, so that the command line and ``iqabench list`` start without loading torch.

A plugin module that needs torch only inside its functions writes ``torch = lazy_module("torch")`` instead of
``import torch``: the first attribute access imports torch, and every access goes to the real module, so
function bodies read exactly as with the import. Code that runs when the module is imported (decorators,
default arguments, base classes, module constants) must not touch it, or torch is imported right then:
decorate methods with :func:`inference_mode` rather than ``@torch.inference_mode()``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any


class LazyModule:
    """A stand-in for the module ``name`` that imports it on the first attribute access."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports on first use (typed ``Any``: it is used like the module)."""
    return LazyModule(name)


def inference_mode(method: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.inference_mode()`` as a method decorator that imports torch on the first call, not when the
    class is defined."""

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.inference_mode():
            return method(*args, **kwargs)

    return run
