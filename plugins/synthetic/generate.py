"""Generating the synthetic dataset into its cache folder, once, atomically.

The dataset is made on first use: every reference is degraded by every
distortion at five levels and written as lossless PNG, together with a
``manifest.json`` that records the generator version, the parameters, and for
each image its reference, distortion, level, parameter, label and the SHA-256
of its decoded pixels (which the ``describer`` uses to recognise images).

Generation writes into a temporary sibling folder and renames it into place
only when complete, manifest last, so a crash or a kill never leaves a folder
that a later run trusts. A folder whose manifest is of another generator
version or lacks requested images is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import scipy
from PIL import Image

from iqabench.dataset import DATA_ENV
from iqabench.errors import IQABenchError
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


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a complete generation in ``root``, or None if there is none to trust."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != GENERATOR_VERSION:
        return None
    return manifest


def covers(manifest: dict[str, Any], size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]) -> bool:
    """Whether a generation holds every image requested, at the requested size."""
    return (
        tuple(manifest.get("size", ())) == tuple(size)
        and set(references) <= set(manifest.get("references", ()))
        and set(distortions) <= set(manifest.get("distortions", {}))
    )


def ensure_generated(
    root: Path, size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]
) -> dict[str, Any]:
    """The manifest of ``root``, generating the dataset there first unless a trusted one covers the request."""
    manifest = read_manifest(root)
    if manifest is not None and covers(manifest, size, references, distortions) and _files_present(root, manifest):
        return manifest
    return generate(root, size, references, distortions)


def _files_present(root: Path, manifest: dict[str, Any]) -> bool:
    return all((root / entry["image"]).is_file() for entry in manifest.get("images", ()))


def generate(root: Path, size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]) -> dict[str, Any]:
    """Write the dataset into a temporary sibling of ``root`` and rename it into place when complete."""
    root = Path(root)
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_partials(root)
    partial = root.parent / f".{root.name}{_PARTIAL}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        manifest = _write_images(partial, size, references, distortions)
        _write_json(partial / MANIFEST, manifest)
        _install(partial, root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return read_manifest(root) or manifest


def _write_images(out: Path, size: tuple[int, int], references: Sequence[str], distortions: Sequence[str]) -> dict[str, Any]:
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


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a folder that holds anything but an empty folder or an earlier generation."""
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not (root / MANIFEST).exists())):
        raise IQABenchError(
            f"{root} exists and is not a synthetic-dataset cache (no {MANIFEST}); iqabench will not overwrite it. "
            "Give the synthetic dataset another root (-o root=DIR), or empty that folder."
        )


def _install(partial: Path, root: Path) -> None:
    """Move a complete generation into place; an earlier one is moved aside first and then deleted."""
    _check_replaceable(root)
    old = None
    if root.exists():
        if any(root.iterdir()):
            old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            root.rename(old)
        else:
            root.rmdir()
    try:
        partial.rename(root)
    except OSError:
        # another process installed its generation first; keep whichever is there if it can be trusted
        if read_manifest(root) is None:
            raise
        shutil.rmtree(partial, ignore_errors=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _remove_abandoned_partials(root: Path) -> None:
    """Delete temporary folders left by generations whose process is gone (killed mid-way)."""
    for candidate in root.parent.glob(f".{root.name}{_PARTIAL}*"):
        pid = candidate.name[len(f".{root.name}{_PARTIAL}") :].split("-")[0]
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
