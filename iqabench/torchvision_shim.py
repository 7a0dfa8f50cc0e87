"""Make a CUDA-only torchvision importable next to a CPU torch build.

The only torchvision wheel that matches torch 2.13 is a CUDA build. Its ``_C.so``
links ``libtorch_cuda.so``; on a CPU torch it fails to load, and torchvision's
``_meta_registrations`` then raises ``operator torchvision::nms does not exist``
at import time. transformers, open_clip, timm, peft and trl all import
torchvision, so the whole stack breaks. Declaring the two op schemas that
torchvision registers fake kernels for is enough to let it import; the ops
themselves stay unavailable (iqabench never uses them).

Where torchvision's compiled ops load normally this does nothing.

``import iqabench`` does not import torch: it only puts :class:`ShimOnImport`
on ``sys.meta_path``, which runs :func:`install` the moment anything first
imports torchvision (transformers, open_clip, timm, ... or the user), so
commands that never touch torch start in a fraction of a second.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_LIBRARY = None


class ShimOnImport(importlib.abc.MetaPathFinder):
    """A finder that finds nothing: it runs :func:`install` before the first import of torchvision goes on."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 (the MetaPathFinder protocol)
        if fullname == "torchvision":
            install()
        return None


def install_on_import() -> None:
    """Run :func:`install` when torchvision is first imported (now, if it already is)."""
    if "torchvision" in sys.modules:
        install()
    elif not any(isinstance(finder, ShimOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, ShimOnImport())


def remove_import_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, ShimOnImport)]


def install() -> bool:
    """Declare the missing op schemas if torchvision's own library cannot load.

    Returns True when the shim was installed, False when it was not needed.
    Must run before anything imports torchvision.
    """
    global _LIBRARY
    remove_import_hook()  # before find_spec below, which would consult the hook
    if _LIBRARY is not None:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import torch

    library_path = os.path.join(list(spec.submodule_search_locations)[0], "_C.so")
    try:
        torch.ops.load_library(library_path)
        return False
    except (OSError, RuntimeError):
        pass
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return True
