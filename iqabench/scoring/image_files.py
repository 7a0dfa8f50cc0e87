"""Which files to score: image files, folders searched recursively, and glob patterns.

``iqabench score`` takes any mix of them. A folder contributes every file
under it (recursively) whose extension Pillow can open, in sorted order;
hidden files and folders (names starting with ``.``) are skipped. A glob
(``photos/**/*.jpg``, with ``**`` crossing folders) contributes its matches in
sorted order. A file named explicitly is kept whatever its extension. Each
path appears once, first place kept. An argument that names nothing is an
error naming it, before any model is loaded.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from iqabench.errors import IQABenchError

GLOB_CHARACTERS = set("*?[")


def image_extensions() -> set[str]:
    """Lower-case extensions (with the dot) of the formats Pillow can open here."""
    from PIL import Image

    Image.init()
    return {extension.lower() for extension, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def find_images(arguments: Iterable[str | os.PathLike], *, recursive: bool = True) -> list[str]:
    """The image paths named by ``arguments`` (files, folders, globs), in order, each once."""
    extensions = image_extensions()
    found: dict[str, None] = {}
    for argument in arguments:
        text = str(argument)
        path = Path(text)
        if path.is_file():
            matches = [text]
        elif path.is_dir():
            matches = _images_in(path, extensions, recursive)
            if not matches:
                raise IQABenchError(f"no image files in the folder {text} (looked for {_listed(extensions)}).")
        elif GLOB_CHARACTERS & set(text):
            matches = []
            for match in sorted(glob.glob(text, recursive=True)):
                if Path(match).is_dir():
                    matches.extend(_images_in(Path(match), extensions, recursive))
                elif Path(match).suffix.lower() in extensions:
                    matches.append(match)
            if not matches:
                raise IQABenchError(f"the pattern {text!r} matches no image files.")
        else:
            raise IQABenchError(f"{text}: no such file or folder.")
        found.update(dict.fromkeys(matches))
    return list(found)


def _images_in(folder: Path, extensions: set[str], recursive: bool) -> list[str]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(
        str(path) for path in pattern
        if path.suffix.lower() in extensions and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _listed(extensions: set[str]) -> str:
    common = [e for e in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") if e in extensions]
    return ", ".join(common) + ", ..."
