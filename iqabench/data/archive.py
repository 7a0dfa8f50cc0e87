"""Unpacking downloaded archives so that no member lands outside the target folder.

An archive is someone else's file. ``tarfile.extractall`` and
``zipfile.extractall`` follow what the members say: a name with ``..`` or an
absolute path writes elsewhere ("zip slip"), and a tar symlink or hard link
makes a later member write through it. Here every member name is checked
before anything is written, only plain files and folders are created, and an
archive with a member that would leave the target is refused as a whole
(:class:`~iqabench.errors.UnsafeArchiveError`); the caller removes what was
unpacked. Members are streamed, so a 35 GB ``.tgz`` is read once, in order.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any

from iqabench import progress
from iqabench.errors import SourceChangedError, UnsafeArchiveError

#: members that are packing residue, not data (macOS resource forks)
SKIPPED_PREFIXES = ("__MACOSX/",)
COPY_CHUNK = 1 << 20


def safe_member_path(name: str, archive: str) -> str | None:
    """The member's path relative to the target, normalised; None for a member to skip; an error when it leaves."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":") or "\0" in cleaned:
        raise UnsafeArchiveError(f"refused {archive}: member {name!r} has an absolute path; nothing was installed.")
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../"):
        raise UnsafeArchiveError(
            f"refused {archive}: member {name!r} would be written outside the target folder; nothing was installed."
        )
    if normal in ("", ".") or any(normal.startswith(p) or normal + "/" == p for p in SKIPPED_PREFIXES):
        return None
    return normal


class _ReadCounter:
    """Moves a progress bar by the bytes read from the archive file (compressed bytes for a .tgz)."""

    def __init__(self, handle: IO[bytes], bar: Any) -> None:
        self._handle = handle
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._bar.update(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def _write_member(source: IO[bytes], target: Path, relative: str) -> None:
    destination = target.joinpath(*relative.split("/"))
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        out = destination.open("xb")  # "x": a member written twice does not silently replace the first
    except FileExistsError:
        raise UnsafeArchiveError(
            f"refused the archive: member {relative!r} occurs twice; nothing was installed."
        ) from None
    with out:
        shutil.copyfileobj(source, out, COPY_CHUNK)


def _unpack_zip(archive: Path, target: Path) -> int:
    count = 0
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for info in members:  # every name is checked before anything is written
            kind = (info.external_attr >> 16) & 0o170000
            if kind == stat.S_IFLNK:
                raise UnsafeArchiveError(
                    f"refused {archive.name}: member {info.filename!r} is a symbolic link; nothing was installed."
                )
            safe_member_path(info.filename, archive.name)
        total = sum(info.file_size for info in members)
        with progress.bar(total=total, desc=f"unpacking {archive.name}", unit="B") as bar:
            for info in members:
                relative = safe_member_path(info.filename, archive.name)
                if relative is None:
                    continue
                if info.is_dir():
                    target.joinpath(*relative.split("/")).mkdir(parents=True, exist_ok=True)
                    continue
                with bundle.open(info) as source:
                    _write_member(source, target, relative)
                bar.update(info.file_size)
                count += 1
    return count


def _unpack_tar(archive: Path, target: Path) -> int:
    count = 0
    with archive.open("rb") as raw, progress.bar(total=archive.stat().st_size, desc=f"unpacking {archive.name}",
                                                 unit="B") as bar:
        with tarfile.open(fileobj=_ReadCounter(raw, bar), mode="r|*") as bundle:  # a stream: read once, in order
            for member in bundle:
                relative = safe_member_path(member.name, archive.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(
                        f"refused {archive.name}: member {member.name!r} is a link (to {member.linkname!r}); "
                        "nothing was installed."
                    )
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(
                        f"refused {archive.name}: member {member.name!r} is not a file or a folder; "
                        "nothing was installed."
                    )
                if relative is None:
                    continue
                if member.isdir():
                    target.joinpath(*relative.split("/")).mkdir(parents=True, exist_ok=True)
                    continue
                source = bundle.extractfile(member)
                assert source is not None  # a regular file always has contents
                with source:
                    _write_member(source, target, relative)
                count += 1
    return count


def unpack(archive: Path, target: Path) -> int:
    """Unpack a .zip, .tar, .tgz / .tar.gz (any tar compression) into ``target``; the number of files written.

    Raises :class:`UnsafeArchiveError` for a member that would land outside
    ``target`` (absolute, ``..``, a link, a device); files written before are
    left for the caller to remove with the whole target.
    """
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        return _unpack_zip(archive, target)
    try:
        return _unpack_tar(archive, target)
    except tarfile.ReadError as exc:
        raise SourceChangedError(
            f"{archive.name} is neither a zip nor a tar archive ({exc}); nothing was installed."
        ) from None


def single_top_folder(target: Path) -> Path:
    """The folder an archive wrapped everything in (``koniq10k/``), or ``target`` when there is no single one."""
    entries = [entry for entry in target.iterdir() if entry.name not in ("__MACOSX",)]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return target
