"""Finding a dataset's image files with one directory listing per folder.

Label files name images by their file name only (``i01_01_1.bmp``), while the
images sit in one of several folders depending on how the archive was
unpacked, and the case of a name may differ between the label file and the
disk (TID2013, CSIQ). Listing each candidate folder once and looking names up
in memory is both robust to these variants and fast: a 10k-image dataset costs
a handful of ``os.scandir`` calls instead of 10k ``stat`` calls.

The finder only ever answers with paths under the root: a path that leaves it
(``../x.jpg``, an absolute path elsewhere) is not looked up, so that
:func:`iqabench.contracts.dataset.build_index` sees it as written and refuses it.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

from iqabench.api import list_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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
    holding a name wins. Look-ups fall back to a case-insensitive match. With
    ``search_tree``, a name found in none of them is looked for in every
    folder under the root (walked once, in sorted order), for meta files
    written for another layout (``koniq/x.jpg`` relative to a parent folder).
    """

    def __init__(self, root: Path, folders: Iterable[str], *, search_tree: bool = False) -> None:
        self.root = root
        self.folders: list[str] = []
        self.search_tree = search_tree
        #: file names (lower case) found in more than one folder of the tree, with every relative path
        self.duplicates: dict[str, list[str]] = {}
        #: names that a look-up answered with the first of several same-named files
        self.ambiguous: set[str] = set()
        self._exact: dict[str, str] = {}
        self._folded: dict[str, str] = {}
        self._listed: dict[str, set[str]] = {}
        self._tree_walked = False
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

    def _walk_tree(self) -> None:
        """Add every image under the root, folders in sorted order, and note names that occur twice."""
        self._tree_walked = True
        seen: dict[str, list[str]] = {}
        for folder, subfolders, names in os.walk(self.root):
            subfolders.sort()
            relative_folder = os.path.relpath(folder, self.root).replace(os.sep, "/")
            for name in sorted(names):
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                relative = name if relative_folder == "." else f"{relative_folder}/{name}"
                seen.setdefault(name.lower(), []).append(relative)
                self._exact.setdefault(name, relative)
                self._folded.setdefault(name.lower(), relative)
        self.duplicates = {name: paths for name, paths in seen.items() if len(paths) > 1}

    def find(self, name: str) -> str | None:
        """The relative path of the image called ``name`` (just a file name), or None."""
        found = self._exact.get(name) or self._folded.get(name.lower())
        if found is None and self.search_tree and not self._tree_walked:
            self._walk_tree()
            found = self._exact.get(name) or self._folded.get(name.lower())
        if found is not None and name.lower() in self.duplicates:
            self.ambiguous.add(name.lower())
        return found

    def exists(self, relative: str) -> bool:
        """Whether ``relative`` (a path under the root) is a file, using the cached listings."""
        if self.under_root(relative) != relative:
            return False
        folder, _, name = relative.rpartition("/")
        folder = folder or "."
        if folder not in self._listed:
            self.add_folder(folder)
        return name in self._listed[folder]

    def under_root(self, image: str) -> str | None:
        """``image`` as a normalised path relative to the root, or None when it leaves the root.

        An absolute path inside the root is made relative (a meta written
        with ``/data/koniq/1024x768/x.jpg`` for the root ``/data/koniq``).
        Symbolic links are not followed here: :func:`iqabench.contracts.dataset.build_index`
        checks where each image really is.
        """
        image = image.replace("\\", "/")
        if posixpath.isabs(image):
            root = posixpath.normpath(str(self.root).replace(os.sep, "/"))
            image = posixpath.normpath(image)
            if not image.startswith(posixpath.join(root, "")):
                return None
            image = image[len(root) :].lstrip("/")
        image = posixpath.normpath(image) if image else image
        if not image or image in (".", "..") or image.startswith("../"):
            return None
        return image

    def resolve(self, image: str) -> str | None:
        """A path as written in a label/meta file -> the relative path on disk, or None.

        Tries the path as given, then its file name in the known folders (and
        the whole tree with ``search_tree``), so a meta written for one layout
        (``images/x.jpg``) also finds the official layout (``1024x768/x.jpg``)
        and vice versa. A path that leaves the root is never resolved.
        """
        relative = self.under_root(image)
        if relative is None:
            return None
        if self.exists(relative):
            return relative
        return self.find(relative.rpartition("/")[2])
