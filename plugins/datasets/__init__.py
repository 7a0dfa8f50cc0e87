"""iqabench plugin: the eight IQA datasets of the RALI paper, any DeQA-Score meta file, and your own folder.

Each dataset reads its official release as distributed, or the DeQA-Score meta
files that Q-Insight, DeQA-Score and RALI evaluate on; ``folder`` reads a folder
of images and a CSV or JSON of their scores. See docs/datasets.md.
"""

from iqabench.api import hookimpl
from iqabench_plugins.datasets.agiqa3k import AGIQA3k
from iqabench_plugins.datasets.csiq import CSIQ
from iqabench_plugins.datasets.deqa_meta import DeqaMetaDataset
from iqabench_plugins.datasets.folder import FolderDataset
from iqabench_plugins.datasets.kadid10k import KADID10k
from iqabench_plugins.datasets.koniq10k import KonIQ10k
from iqabench_plugins.datasets.livew import LiveWild
from iqabench_plugins.datasets.pipal import PIPAL
from iqabench_plugins.datasets.spaq import SPAQ
from iqabench_plugins.datasets.tid2013 import TID2013

DATASETS = (KonIQ10k, SPAQ, LiveWild, KADID10k, CSIQ, TID2013, PIPAL, AGIQA3k, DeqaMetaDataset, FolderDataset)


@hookimpl
def iqabench_datasets() -> list[type]:
    return list(DATASETS)
