"""iqabench plugin ``niqe``: NIQE as released by LIVE (MATLAB), re-implemented in NumPy.

Also home of the MATLAB image operations and natural-scene statistics that
the ``brisque`` plugin reuses (:mod:`.matlab`, :mod:`.nss`).
"""

from iqabench import hookimpl
from iqabench_plugins.niqe.model import NIQE

__all__ = ["NIQE"]


@hookimpl
def iqabench_models() -> list[type]:
    return [NIQE]
