"""iqabench plugin ``synthetic``: a generated sanity dataset and its ``describer`` reasoner.

The dataset degrades the photographs bundled with scikit-image by designed
distortions at five levels (:mod:`.dataset`); the describer writes text about
those distortions so RALI can be trained offline (:mod:`.describer`).
"""

from iqabench.api import hookimpl

__all__ = ["Describer", "Synthetic"]


def __getattr__(name: str):
    if name == "Synthetic":
        from iqabench_plugins.synthetic.dataset import Synthetic

        return Synthetic
    if name == "Describer":
        from iqabench_plugins.synthetic.describer import Describer

        return Describer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def iqabench_datasets() -> list[type]:
    from iqabench_plugins.synthetic.dataset import Synthetic

    return [Synthetic]


@hookimpl
def iqabench_models() -> list[type]:
    from iqabench_plugins.synthetic.describer import Describer

    return [Describer]
