"""iqabench plugin ``niqe``: NIQE as released by LIVE (MATLAB), re-implemented in NumPy.

Also home of the MATLAB image operations and natural-scene statistics that
the ``brisque`` plugin reuses (:mod:`.matlab`, :mod:`.nss`). Modules are
imported when used, so listing plugins loads no SciPy.
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
