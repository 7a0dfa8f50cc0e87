"""iqabench plugin ``brisque``: BRISQUE features (own code) with LIVE's released SVR."""

from iqabench.api import hookimpl

__all__ = ["BRISQUE"]


def __getattr__(name: str):
    if name == "BRISQUE":
        from iqabench_plugins.brisque.model import BRISQUE

        return BRISQUE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def iqabench_models() -> list[type]:
    from iqabench_plugins.brisque.model import BRISQUE

    return [BRISQUE]
