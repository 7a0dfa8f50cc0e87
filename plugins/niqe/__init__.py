"""iqabench plugin ``niqe``: NIQE as released by LIVE (MATLAB), re-implemented in NumPy.

The MATLAB image operations and natural-scene statistics it shares with the
``brisque`` plugin are in :mod:`iqabench_plugins.nss`. Modules are imported
when used, so listing plugins loads no SciPy.
"""

from iqabench.api import hookimpl

__all__ = ["NIQE"]


def __getattr__(name: str):
    if name == "NIQE":
        from iqabench_plugins.niqe.model import NIQE

        return NIQE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def iqabench_models() -> list[type]:
    from iqabench_plugins.niqe.model import NIQE

    return [NIQE]
