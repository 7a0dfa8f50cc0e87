"""Generating the synthetic dataset into its cache folder, once, atomically.

The dataset is made on first use: every reference is degraded by every
distortion at five levels and written as lossless PNG, together with a
``manifest.json`` that records the generator version, the parameters, and for
each image its reference, distortion, level, parameter, label and the SHA-256
of its decoded pixels (which the ``describer`` uses to recognise images).

Each image size gets its own generation folder, ``<root>/<width>x<height>``,
so suites that use different sizes share a root without evicting each other.
Generation writes into a temporary sibling folder and renames it into place
only when complete, manifest last, so a crash or a kill never leaves a folder
that a later run trusts. A folder whose manifest is of another generator
version or lacks requested images is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import scipy
from PIL import Image

from iqabench.api import DATA_ENV, IQABenchError
from iqabench_plugins.synthetic.distortions import DISTORTIONS
from iqabench_plugins.synthetic.references import REFERENCES, load_reference

#: bump whenever a change would alter any generated pixel
GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
LEVELS = 5
DEFAULT_SIZE = (384, 256)
#: NIQE extracts features at full and half scale on 96-pixel patches
MIN_SIDE = 192
_PARTIAL = ".partial-"


def severity_label(level: int, levels: int = LEVELS) -> float:
    """The designed label: 5 for the pristine reference (level 0), down to 1 at the strongest level."""
    return (5 * levels - 4 * level) / levels  # one division, so 1.8 is 1.8 and not 1.7999999999999998


def default_root() -> Path:
    """``$IQABENCH_DATA/synthetic``, else ``$XDG_CACHE_HOME/iqabench/synthetic`` (``~/.cache`` by default)."""
    data_root = os.environ.get(DATA_ENV)
    if data_root:
        return Path(os.path.expanduser(data_root)) / "synthetic"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "iqabench" / "synthetic"


def pixel_hash(pixels: np.ndarray) -> str:
    """SHA-256 of an 8-bit RGB array's shape and pixels: equal exactly when the decoded images are equal."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha256(f"{pixels.shape[0]}x{pixels.shape[1]}x{pixels.shape[2]}:".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def image_hash(image: Image.Image) -> str:
    """:func:`pixel_hash` of a decoded image; module-level so decode workers can pickle it."""
    return pixel_hash(np.asarray(image.convert("RGB")))


def noise_seed(reference: str, distortion: str, level: int) -> int:
    """A fixed seed per (reference, distortion, level), independent of Python's salted ``hash``."""
    return int.from_bytes(hashlib.sha256(f"{reference}/{distortion}/{level}".encode()).digest()[:8], "little")


def generation_folder(root: Path, size: tuple[int, int]) -> Path:
    """Where the generation of one size lives: ``root/<width>x<height>``, so sizes never evict each other."""
    return Path(root) / f"{size[0]}x{size[1]}"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete generation in ``folder``, or None if there is none to trust."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != GENERATOR_VERSION:
        return None
    return manifest


def generations(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every trusted generation under a dataset root, as (folder, manifest)."""
    if not Path(root).is_dir():
        return []
    found = [(folder, read_manifest(folder)) for folder in sorted(Path(root).iterdir()) if folder.is_dir()]
    return [(folder, manifest) for folder, manifest in found if manifest and not folder.name.startswith(".")]


def covers(manifest: dict[str, Any], references: Sequence[str], distortions: Sequence[str]) -> bool:
    """Whether a generation holds every requested reference and distortion."""
    return set(references) <= set(manifest.get("references", ())) and set(distortions) <= set(
        manifest.get("distortions", {})
    )


def is_usable(folder: Path, manifest: dict[str, Any] | None, references: Sequence[str],
              distortions: Sequence[str]) -> bool:
    """Whether a generation can serve the request as it is: trusted, covering it, and with its files on disk."""
    return manifest is not None and covers(manifest, references, distortions) and _files_present(folder, manifest)


def ensure_generated(
    root: Path, size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]
) -> tuple[Path, dict[str, Any]]:
    """The generation folder of ``size`` under ``root`` and its manifest, generating it first if need be.

    A trusted generation that lacks some requested images is regenerated with the union of what it had and
    what is asked, so alternating subsets do not regenerate each other away.
    """
    folder = generation_folder(root, size)
    manifest = read_manifest(folder)
    if is_usable(folder, manifest, references, distortions):
        return folder, manifest
    if manifest is not None:
        wanted_references = set(references) | set(manifest.get("references", ()))
        wanted_distortions = set(distortions) | set(manifest.get("distortions", {}))
        references = [name for name in REFERENCES if name in wanted_references]
        distortions = [name for name in DISTORTIONS if name in wanted_distortions]
    return folder, generate(folder, size, references, distortions)


def _files_present(folder: Path, manifest: dict[str, Any]) -> bool:
    return all((folder / entry["image"]).is_file() for entry in manifest.get("images", ()))


def generate(
    folder: Path, size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]
) -> dict[str, Any]:
    """Write a generation into a temporary sibling of ``folder`` and rename it into place when complete."""
    folder = Path(folder)
    _check_own_root(folder.parent)
    _check_replaceable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_partials(folder)
    partial = folder.parent / f".{folder.name}{_PARTIAL}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        manifest = _write_images(partial, size, references, distortions)
        _write_json(partial / MANIFEST, manifest)
        _install(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return read_manifest(folder) or manifest


def _write_images(
    out: Path, size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]
) -> dict[str, Any]:
    entries = []
    for name in references:
        pristine = load_reference(name, size)
        entries.append(_save(out, f"images/{name}/pristine.png", pristine, name, None, 0, None))
        for distortion in (DISTORTIONS[d] for d in distortions):
            if distortion.needs_colour and not REFERENCES[name].colour:
                continue
            for level, parameter in enumerate(distortion.levels, start=1):
                rng = np.random.default_rng(noise_seed(name, distortion.name, level))
                pixels = distortion.apply(pristine, parameter, rng)
                path = f"images/{name}/{distortion.name}_{level}.png"
                entries.append(_save(out, path, pixels, name, distortion.name, level, parameter))
    hashes = [entry["sha256"] for entry in entries]
    if len(set(hashes)) != len(hashes):
        raise IQABenchError(
            "synthetic generator bug: two generated images have identical pixels, so the describer could not "
            "tell them apart; please report it with the manifest parameters."
        )
    return {
        "generator": "iqabench synthetic",
        "version": GENERATOR_VERSION,
        "size": list(size),
        "levels": LEVELS,
        "label": "label = 5 - 4 * level / 5; level 0 is the pristine reference",
        "labels_are": "designed severities, not human opinions",
        "references": list(references),
        "reference_sources": {name: REFERENCES[name].source for name in references},
        "distortions": {
            d: {"parameter": DISTORTIONS[d].parameter, "levels": list(DISTORTIONS[d].levels)} for d in distortions
        },
        "libraries": {"numpy": np.__version__, "scipy": scipy.__version__, "pillow": PIL.__version__},
        "images": entries,
    }


def _save(
    out: Path, relative: str, pixels: np.ndarray, reference: str, distortion: str | None, level: int, parameter: Any
) -> dict[str, Any]:
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    # zlib level 3: files within a few percent of the default level 6, encoded about twice as fast
    Image.fromarray(pixels, mode="RGB").save(path, "PNG", compress_level=3)
    return {
        "image": relative,
        "reference": reference,
        "distortion": distortion,
        "level": level,
        "parameter": parameter,
        "label": severity_label(level),
        "sha256": pixel_hash(pixels),
    }


def _write_json(path: Path, content: dict[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


#: what a synthetic root holds: generation folders (``384x256``), their temporary and outgoing siblings
_OWN_ENTRY = re.compile(r"\d+x\d+|\.\d+x\d+\.(partial|old)-[0-9a-f-]+")


def _check_own_root(root: Path) -> None:
    """Generate only into a root of the synthetic dataset's own: new, empty, or holding only its generations.

    A ``root:`` naming a folder of something else (a system folder, another dataset, a home folder) is a
    mistake; the generator must not add folders to it.
    """
    if not root.exists():
        return
    others = [] if not root.is_dir() else sorted(e.name for e in root.iterdir() if not _OWN_ENTRY.fullmatch(e.name))
    if not root.is_dir() or others:
        what = "is not a folder" if not root.is_dir() else f"holds other files ({', '.join(others[:3])}" + (
            ", ...)" if len(others) > 3 else ")")
        raise IQABenchError(
            f"the synthetic dataset is generated into its root, and {root} {what}: it is not a synthetic-dataset "
            "root. Give a new or empty folder as its root, or leave root unset to use the cache "
            f"({default_root()})."
        )


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder that holds anything but an empty folder or an earlier generation."""
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / MANIFEST).exists())):
        raise IQABenchError(
            f"{folder} exists and is not a synthetic-dataset cache (no {MANIFEST}); iqabench will not overwrite it. "
            "Give the synthetic dataset another root (-o root=DIR), or empty that folder."
        )


def _install(partial: Path, folder: Path) -> None:
    """Move a complete generation into place; an earlier one is moved aside first and then deleted."""
    _check_replaceable(folder)
    old = None
    if folder.exists():
        if any(folder.iterdir()):
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            folder.rename(old)
        else:
            folder.rmdir()
    try:
        partial.rename(folder)
    except OSError:
        # another process installed its generation first; keep whichever is there if it can be trusted
        if read_manifest(folder) is None:
            raise
        shutil.rmtree(partial, ignore_errors=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _remove_abandoned_partials(folder: Path) -> None:
    """Delete temporary folders left by generations whose process is gone (killed mid-way)."""
    for candidate in folder.parent.glob(f".{folder.name}{_PARTIAL}*"):
        pid = candidate.name[len(f".{folder.name}{_PARTIAL}") :].split("-")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
