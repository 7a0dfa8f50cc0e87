"""iqabench plugin ``brisque``: BRISQUE features (own code) with LIVE's released SVR."""

from iqabench import hookimpl
from iqabench_plugins.brisque.model import BRISQUE

__all__ = ["BRISQUE"]


@hookimpl
def iqabench_models() -> list[type]:
    return [BRISQUE]
