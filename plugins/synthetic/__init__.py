"""iqabench plugin ``synthetic``: a generated sanity dataset and its ``describer`` reasoner.

The dataset degrades the photographs bundled with scikit-image by designed
distortions at five levels (:mod:`.dataset`); the describer writes text about
those distortions so RALI can be trained offline (:mod:`.describer`).
"""

from iqabench import hookimpl
from iqabench_plugins.synthetic.dataset import Synthetic
from iqabench_plugins.synthetic.describer import Describer

__all__ = ["Describer", "Synthetic"]


@hookimpl
def iqabench_datasets() -> list[type]:
    return [Synthetic]


@hookimpl
def iqabench_models() -> list[type]:
    return [Describer]
