"""What a result was computed from, by content: image files, checkpoint files and the code that scores.

A run reuses finished predictions and trained checkpoints when their
fingerprint matches. Names alone would let stale numbers through: an image
blurred in place, a checkpoint folder retrained into the same path, a
plugin's scoring code edited by its author. So the fingerprints also hold:

* **image files** by size and modification time (:func:`images_digest`): one
  ``stat`` per image, so a 10k-image test set costs milliseconds. Tools that
  copy files keeping their times (``cp -p``, ``rsync -t``, ``tar``) can bring
  new bytes with old times; ``--hash-images`` (suite field ``hash_images``)
  hashes every image's bytes instead;
* **files named by options** (checkpoints, weights, SVR or pristine-model
  files) by their SHA-256 (:func:`option_files_digest`). Each file is hashed
  once and the hash kept in a small cache (:class:`HashCache`) under its path,
  size, modification and change times, so a 15 GB checkpoint is read once,
  not at every resume;
* **the code** of the model's (or trainer's) plugin (:func:`code_identity`):
  the distribution and version when it was installed from an index, else
  (an editable or local install, or a module that belongs to no
  distribution) the SHA-256 of every file of its top-level package.

iqabench's own core is not part of it: its version and commit are recorded in
every result's provenance, and ``leaderboard --merge`` refuses parts made by
different code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger("iqabench.content")

#: read files in pieces of this size when hashing them
CHUNK = 1 << 20
#: log a line before hashing more than this many bytes, so a long first hash is not a silent pause
ANNOUNCE_BYTES = 1 << 30
#: a file's hash is kept only once the file has not changed for this long (nanoseconds)
SETTLED_NS = 2_000_000_000
#: top-level packages whose code is not fingerprinted: iqabench's core (recorded in provenance) and Python's
NOT_PLUGINS = frozenset({"iqabench", "builtins", "abc", "typing"})


def cache_folder() -> Path:
    """``$XDG_CACHE_HOME/iqabench`` (``~/.cache/iqabench`` by default), as the synthetic dataset's cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iqabench"


def sha256_of_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """SHA-256 of files, kept under (path, device, inode, size, modification and change times).

    The change time (``ctime``) cannot be set by any tool, so a file rewritten with its old modification time
    (``cp -p``) is hashed again. The cache is an SQLite file, safe for several processes; where it cannot be
    opened (a read-only home) hashes are kept for this process only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[tuple[Any, ...], str] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, timeout=30)
                self._db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, stamp TEXT, sha256 TEXT)")
                self._db.commit()
            except (OSError, sqlite3.Error) as exc:
                log.debug("file hash cache %s not usable (%s); hashing without it", path, exc)
                self._db = None

    def sha256(self, path: str | os.PathLike) -> str:
        """The SHA-256 of ``path``'s bytes, from the cache when the file is unchanged since it was hashed."""
        real = os.path.realpath(path)
        info = os.stat(real)
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        known = self._memory.get((real, stamp))
        if known is not None:
            return known
        known = self._lookup(real, stamp)
        if known is not None:
            self._memory[(real, stamp)] = known
            return known
        if info.st_size > ANNOUNCE_BYTES:
            log.info("hashing %s (%.1f GB) once, to tell when it changes", path, info.st_size / 1e9)
        known = sha256_of_file(real)
        # a file changed moments ago may change again within the clock's resolution, keeping its stamp (git's
        # "racy clean" case): its hash is not kept until it has been still for a while
        if time.time_ns() - info.st_ctime_ns >= SETTLED_NS:
            self._store(real, stamp, known)
            self._memory[(real, stamp)] = known
        return known

    def _lookup(self, real: str, stamp: tuple[Any, ...]) -> str | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT stamp, sha256 FROM hashes WHERE path = ?", (real,)).fetchone()
        except sqlite3.Error:
            return None
        return row[1] if row is not None and row[0] == json.dumps(stamp) else None

    def _store(self, real: str, stamp: tuple[Any, ...], sha256: str) -> None:
        if self._db is None:
            return
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)", (real, json.dumps(stamp), sha256))
        except sqlite3.Error as exc:  # a full disk or a locked database costs a later re-hash, nothing else
            log.debug("file hash cache: could not record %s (%s)", real, exc)


@functools.cache
def hash_cache() -> HashCache:
    """The process's cache of file hashes, in :func:`cache_folder`."""
    return HashCache(cache_folder() / "file-hashes.sqlite3")


def tree_digest(path: str | os.PathLike, cache: HashCache | None = None) -> str:
    """SHA-256 of a file, or of a folder's files (names relative to it, in a fixed order; links to files are
    followed, links to folders are not)."""
    cache = cache or hash_cache()
    path = Path(path)
    if not path.is_dir():
        return cache.sha256(path)
    files = []
    for folder, subfolders, names in os.walk(path):  # links to folders are not followed: no cycles
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        files += [os.path.join(folder, name) for name in names if not name.endswith(".pyc")]
    digest = hashlib.sha256()
    for file in sorted(files):
        if os.path.isfile(file):  # links to files are followed; broken links and sockets are not content
            relative = Path(file).relative_to(path).as_posix()
            digest.update(f"{relative}\t{cache.sha256(file)}\n".encode())
    return digest.hexdigest()


def option_files_digest(options: Mapping[str, Any]) -> dict[str, str]:
    """``{option: SHA-256}`` of every option value that names an existing file or folder (a checkpoint, weights,
    an SVR file); other values (names, hub ids, numbers) are fingerprinted as they are written."""
    found = {}
    for key, value in sorted(options.items()):
        if isinstance(value, str) and value and _names_a_file(value):
            found[key] = tree_digest(os.path.expanduser(value))
    return found


def _names_a_file(value: str) -> bool:
    try:
        return os.path.exists(os.path.expanduser(value))
    except (OSError, ValueError):  # not a valid path on this system (too long, NUL bytes)
        return False


def images_digest(paths: Iterable[str | os.PathLike], names: Iterable[str], *, content: bool = False) -> str:
    """A digest of what a list of images holds: per image its name and size and modification time (one ``stat``
    each), or with ``content`` the SHA-256 of its bytes (every byte read; no cache, which would trust the times).

    A missing or unreadable image counts as such, so one that appears later changes the digest.
    """
    digest = hashlib.sha256()
    for path, name in zip(paths, names, strict=True):
        try:
            if content:
                state = sha256_of_file(path)
            else:
                info = os.stat(path)
                state = f"{info.st_size} {info.st_mtime_ns}"
        except OSError as exc:
            state = f"unreadable ({type(exc).__name__})"
        digest.update(f"{name}\t{state}\n".encode())
    return digest.hexdigest()


def code_identity(cls: type) -> dict[str, str]:
    """How the code of ``cls`` and of the classes it derives from is identified, per top-level package:
    ``"<distribution> <version>"`` for an install from an index, else ``"sha256 <digest>"`` of the package's
    files (an editable or local install, a plugin on ``sys.path``, a script)."""
    packages: dict[str, set[str]] = {}
    for klass in cls.__mro__:
        module = klass.__module__
        top = module.split(".")[0]
        if top not in NOT_PLUGINS:
            packages.setdefault(top, set()).add(module)
    return {top: _package_identity(top, frozenset(modules)) for top, modules in sorted(packages.items())}


def _package_identity(top: str, modules: frozenset[str]) -> str:
    package = sys.modules.get(top)
    released = _released_distribution(top, getattr(package, "__file__", None))
    if released is not None:
        return released
    folder = None
    if package is not None and getattr(package, "__file__", None) and hasattr(package, "__path__"):
        folder = Path(package.__file__).parent  # a regular package: every file of it
    if folder is not None:
        return f"sha256 {tree_digest(folder)}"
    files = sorted(f for f in (_module_file(name) for name in modules) if f is not None)
    if not files:
        return "unknown (no source file)"
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{Path(file).name}\t{hash_cache().sha256(file)}\n".encode())
    return f"sha256 {digest.hexdigest()}"


def _module_file(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that cannot be imported again has no file to hash
            return None
    path = getattr(module, "__file__", None)
    return path if path and os.path.isfile(path) else None


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


@functools.cache
def _installed_files(name: str) -> frozenset[str]:
    """The files an installer (pip, uv) wrote for a distribution, from its ``RECORD``; none for an ``egg-info`` in
    a source tree or a ``develop`` install, whose files are the working copy."""
    dist = metadata.distribution(name)
    if dist.read_text("RECORD") is None:
        return frozenset()
    return frozenset(os.path.realpath(dist.locate_file(f)) for f in dist.files or ())


def _released_distribution(top: str, module_file: str | None) -> str | None:
    """``"<name> <version>"`` of the distribution that installed ``top``'s files from an index (or an archive or a
    pinned VCS commit), or ``None`` when its files can change under the same version: an editable or ``develop``
    install (the files are not among those the distribution installed) or a local folder installed with pip."""
    if module_file is None:
        return None
    for name in _packages_distributions().get(top, []):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if os.path.realpath(module_file) not in _installed_files(name):
            continue  # an editable install: the distribution points at files elsewhere
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "null")
        except ValueError:
            direct = None
        if direct is None:
            return f"{dist.metadata['Name']} {dist.version}"
        commit = (direct.get("vcs_info") or {}).get("commit_id")
        if commit:
            return f"{dist.metadata['Name']} {dist.version} {commit}"
        archive = direct.get("archive_info") or {}
        hashes = archive.get("hashes") or archive.get("hash")
        if hashes:
            return f"{dist.metadata['Name']} {dist.version} {json.dumps(hashes, sort_keys=True)}"
        return None  # a local folder: its files may have changed since
    return None
