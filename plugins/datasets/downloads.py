"""Where ``iqabench data download`` gets the eight datasets: one row per dataset, facts only.

Each dataset class sets ``download = DOWNLOADS["<name>"]``. Adding a
downloadable dataset is adding a row here (or setting ``download`` on a
third-party dataset class).

The images come from pyiqa's archive, the labels of the papers from the
DeQA-Score meta files. Data-DeQA-Score holds meta files only: the DeQA-Score
README says to download the metas from it and the source images from each
dataset's site, and Q-Insight issue #1 found no ``images`` folder in it (the
RALI README's "meta files and source images from Data-DeQA-Score" is not what
the dataset's owner says).

Facts and where they were read (for issue 26):

- pyiqa's repository id, ``chaofengc/IQA-PyTorch-Datasets``: pyiqa's download
  code (chaofengc/IQA-PyTorch@01ae427, ``pyiqa/data/dataset_api.py``). The
  Hub's pages read ``IQA-Toolbox-Datasets`` in 2024 snapshots and
  ``IQA-PyTorch-Datasets`` in later ones, also when reached through the
  ``IQA-Toolbox-Datasets`` address (which the Hub redirects); pyiqa's README
  links both.
- Archive names: ``dataset_download_name`` in the same file; ``AGIQA-3K.zip``
  is in the repository (HF commit e874459) but not in pyiqa's code.
- Sizes and sha256: the LFS pointers on the Hub's commit pages (commit in each
  row). The Hub also sends the sha256 of an LFS file with every download;
  iqabench checks the file against both.
- The folder each archive keeps the dataset in: pyiqa's
  ``default_dataset_configs.yml`` (``dataroot_target``; pyiqa unpacks the
  archive into its data root and reads that folder). Whether an archive also
  carries the official label files is not published; the download checks it.
- DeQA-Score folders and meta names: DeQA-Score@8e4abc8 ``scripts/infer.sh``
  (the eight test metas) and ``scripts/train.sh`` (three train metas); other
  ``<split>_*.json`` files in ``metas/`` are listed from the Hub at download
  time, not assumed.
- Terms: pyiqa's README (@01ae427); the Hub card's licence field of the
  archive repository; each dataset's repository or site as named in its row.
"""

from __future__ import annotations

from iqabench.api import DatasetSource, HubFile, HubMetas

PYIQA_REPO = "chaofengc/IQA-PyTorch-Datasets"
DEQA_REPO = "zhiyuanyou/Data-DeQA-Score"

PYIQA_TERMS = (
    "Images come from pyiqa's mirror (HF chaofengc/IQA-PyTorch-Datasets, card licence cc-by-sa-4.0), whose README "
    "says the datasets are collected for academic, research and educational purposes only and that users must follow "
    "the licences and conditions of each dataset's creators."
)
DEQA_TERMS = (
    "The DeQA-Score meta files (HF zhiyuanyou/Data-DeQA-Score) carry the licence field apache-2.0 on their dataset "
    "card as copied by a duplicate of it; iqabench has not read the original card."
)
NOT_CONFIRMED = "not confirmed by iqabench: read them at"


def _pyiqa(path: str, size: int, sha256: str, commit: str) -> HubFile:
    return HubFile(PYIQA_REPO, path, size=size, sha256=sha256, evidence=f"LFS pointer in HF commit {commit}",
                   terms=PYIQA_TERMS)


def _deqa(folder: str, *required: str) -> HubMetas:
    return HubMetas(DEQA_REPO, f"{folder}/metas", required=required,
                    evidence="DeQA-Score@8e4abc8 scripts/infer.sh and scripts/train.sh", terms=DEQA_TERMS)


DOWNLOADS: dict[str, DatasetSource] = {
    "koniq10k": DatasetSource(
        10073,
        _pyiqa("koniq10k.tgz", 6_348_641_188, "18f4b664fed41ffdf37dd5cae6921901d86afddd952fdfa3d77eda25cc48370b",
               "6545abd7b3a8556cac11cf9ca5a567cb593e3f60"),
        _deqa("KONIQ", "test_koniq_2k.json", "train_koniq_7k.json"),
        "KonIQ-10k's images are Flickr photos from YFCC100M under Creative Commons licences (KonIQ-10k paper); the "
        f"database's own terms are {NOT_CONFIRMED} http://database.mmsp-kn.de/koniq-10k-database.html",
        archive_folder="koniq10k",
        notes=("pyiqa reads koniq10k/1024x768 and koniq10k/512x384 from this one archive",),
    ),
    "spaq": DatasetSource(
        11125,
        _pyiqa("spaq.tgz", 34_841_101_349, "54e0cb49dc8359f9293e746d452d8b12ec653056c9b12a4f97798a984c7418f7",
               "38ae5dc5019b596e953a6f80f7fcf6b009625766"),
        _deqa("SPAQ", "test_spaq_2k.json", "train_spaq_9k.json"),
        "SPAQ's repository (h4nwei/SPAQ) states no licence; its terms are "
        f"{NOT_CONFIRMED} https://github.com/h4nwei/SPAQ",
        archive_folder="SPAQ",
        notes=("pyiqa reads SPAQ/TestImage from this archive",),
    ),
    "livew": DatasetSource(
        1169,
        _pyiqa("live_challenge.tgz", 325_992_044, "cdd7a6227de40df10cfd5daf8d19894e95200fa0ca5655bbe50fd433d3b31f25",
               "e198fc3981f8f4fb2909fb53ce1a9638aef3deaf"),
        _deqa("LIVE-WILD", "test_livew_1k.json"),
        "LIVE In the Wild: the University of Texas copyright notice allows use and redistribution for any purpose if "
        "the notice is kept and the database is cited (notice as quoted by third parties); "
        "https://live.ece.utexas.edu/research/ChallengeDB/index.html",
        archive_folder="LIVEC",
        notes=("pyiqa reads LIVEC/ from this archive, and its processing script LIVEC/Data/*.mat",),
    ),
    "kadid10k": DatasetSource(
        10125,
        _pyiqa("kadid10k.tgz", 3_069_431_805, "841396f9237e68c8e6614d5dc907a8fd83d4f403cce89ee2c14524406405b14a",
               "d378319b35bc59b83dec155c3afbaf4e85bf3149"),
        _deqa("KADID10K", "test_kadid_2k.json", "train_kadid_8k.json"),
        f"KADID-10k's terms are {NOT_CONFIRMED} http://database.mmsp-kn.de/kadid-10k-database.html",
        archive_folder="kadid10k",
        notes=("pyiqa reads kadid10k/images, and its processing script kadid10k/dmos.csv",),
    ),
    "csiq": DatasetSource(
        866,
        _pyiqa("csiq.tgz", 379_062_485, "e34c372c98e751c5490dadeb536e37666296b6c4f651df30cc04c0547ffee5b0",
               "3a1693ce3aec04ddf5670eb70fe43a58cc709a1c"),
        _deqa("CSIQ", "test_csiq_866.json"),
        f"CSIQ's terms are {NOT_CONFIRMED} https://s2.smu.edu/~eclarson/csiq.html",
        archive_folder="CSIQ",
        notes=("pyiqa reads CSIQ/dst_imgs and CSIQ/src_imgs, and its processing script CSIQ/csiq_label.txt",),
    ),
    "tid2013": DatasetSource(
        3000,
        _pyiqa("tid2013.tgz", 1_227_227_546, "ac92094b1469ec0dff181a553b8c84302606ba99f81e38652532cadac886d735",
               "1cbf2a1fb8e785166b5258babd37bad4949dd8cb"),
        _deqa("TID2013", "test_tid2013_3k.json"),
        f"TID2013's terms are {NOT_CONFIRMED} https://www.ponomarenko.info/tid2013.htm",
        archive_folder="tid2013",
        notes=("pyiqa reads tid2013/distorted_images, and its processing script tid2013/mos_with_names.txt",),
    ),
    "pipal": DatasetSource(
        23200,
        _pyiqa("pipal.tar", 5_843_353_600, "6bcb713ba0f9ad9ff6c11fc4c680ec88e633a674d16dc9d0700786d24b40f6b4",
               "58779e3fe35de2f41230d2234d0e7d717b46a729"),
        _deqa("PIPAL", "test_pipal_5k.json"),
        "PIPAL's repository (HaomingCai/PIPAL-dataset) states no licence for the data; its terms are "
        f"{NOT_CONFIRMED} https://github.com/HaomingCai/PIPAL-dataset",
        archive_folder="PIPAL",
        notes=("pyiqa reads PIPAL/Dist_Imgs and PIPAL/Train_Ref; whether Dist_Imgs also holds the validation images "
               "is not known",),
    ),
    "agiqa3k": DatasetSource(
        2982,
        _pyiqa("AGIQA-3K.zip", 97_950_738, "96401d1f9844ef68092c7f6d5681c8ec90b20c33d238fb4d25033133f10084cf",
               "e874459ad97a21e02874115a6090722c1ce19f24"),
        _deqa("AGIQA3K", "test_agiqa_3k.json"),
        "AGIQA-3K's repository (lcysyzxdxc/AGIQA-3k-Database) carries an MIT licence file; whether it covers the "
        "images is not stated there",
        notes=("not in pyiqa's code: the archive's layout is not documented",),
    ),
}
