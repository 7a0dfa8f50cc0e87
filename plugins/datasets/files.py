"""Finding a dataset's image files with one directory listing per folder.

Label files name images by their file name only (``i01_01_1.bmp``), while the
images sit in one of several folders depending on how the archive was
unpacked, and the case of a name may differ between the label file and the
disk (TID2013, CSIQ). Listing each candidate folder once and looking names up
in memory is both robust to these variants and fast: a 10k-image dataset costs
a handful of ``os.scandir`` calls instead of 10k ``stat`` calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_files(folder: Path) -> list[str]:
    """Names of the regular files in ``folder`` (empty when it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_subfolders(folder: Path) -> list[str]:
    """Names of the sub-folders of ``folder`` (empty when it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


class ImageFinder:
    """Maps image file names to their paths relative to a dataset root.

    ``folders`` are searched in order, relative to ``root``; the first folder
    holding a name wins. Look-ups fall back to a case-insensitive match.
    """

    def __init__(self, root: Path, folders: Iterable[str]) -> None:
        self.root = root
        self.folders: list[str] = []
        self._exact: dict[str, str] = {}
        self._folded: dict[str, str] = {}
        self._listed: dict[str, set[str]] = {}
        for folder in folders:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        folder = folder.strip("/") or "."
        if folder in self._listed:
            return
        names = list_files(self.root / folder)
        self._listed[folder] = set(names)
        self.folders.append(folder)
        for name in names:
            relative = name if folder == "." else f"{folder}/{name}"
            self._exact.setdefault(name, relative)
            self._folded.setdefault(name.lower(), relative)

    def find(self, name: str) -> str | None:
        """The relative path of the image called ``name`` (just a file name), or None."""
        return self._exact.get(name) or self._folded.get(name.lower())

    def exists(self, relative: str) -> bool:
        """Whether ``relative`` (a path under the root) is a file, using the cached listings."""
        folder, _, name = relative.rpartition("/")
        folder = folder or "."
        if folder not in self._listed:
            self.add_folder(folder)
        return name in self._listed[folder]

    def resolve(self, image: str) -> str | None:
        """A path as written in a label/meta file -> the relative path on disk, or None.

        Tries the path as given, then its file name in the known folders, so a
        meta written for one layout (``images/x.jpg``) also finds the official
        layout (``1024x768/x.jpg``) and vice versa.
        """
        image = image.replace("\\", "/")
        if image.startswith("./"):
            image = image[2:]
        if self.exists(image):
            return image
        return self.find(image.rpartition("/")[2])

    @property
    def count(self) -> int:
        return len(self._exact)
