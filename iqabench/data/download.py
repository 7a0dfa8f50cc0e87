"""``iqabench data download``: a dataset in the layout ``data check`` reads, or one line saying why not.

Which files make up a dataset is what its class declares (``download``, a
:class:`~iqabench.data.sources.DatasetSource`). For each dataset the steps
are: skip it when it is already complete; show its terms (and stop unless they
are accepted); ask the Hub what the files are now and stop if that differs
from the declaration or from an earlier verified download; check the free
space; download (resuming a partial file); check every file's bytes against
the Hub's checksum; unpack into a staging folder (the dataset is the folder
the declaration names, else the archive's single top folder; anything beside
it is left out); read the result with the dataset's own plugin and check it
(every labelled image present, at least the official number of images); and
only then move it into place with one rename. So a dataset folder that
``data check`` sees is always a complete one, and an interrupted or refused
download leaves nothing there.

Under the data root, ``.iqabench-download/`` holds the partial and finished
downloads (removed after a successful install unless ``keep_archives``), the
staging folder, and ``checksums.json``: the checksum of every file iqabench has
verified, so that a source that later serves other bytes under the same name is
noticed. Each installed dataset folder has ``.iqabench-download.json`` saying
what was installed from where.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqabench import locks
from iqabench.data import hub
from iqabench.data.archive import single_top_folder, unpack
from iqabench.data.sources import (
    ACCEPT_ENV,
    DEFAULT_SOURCE,
    SOURCES,
    DatasetSource,
    HubFile,
    HubMetas,
    downloadable,
    resolve_names,
)
from iqabench.errors import DownloadError, IQABenchError, SourceChangedError, UnknownNameError, did_you_mean
from iqabench.files import atomic_write_json, read_json
from iqabench.provenance import command_line
from iqabench.registry.discovery import PluginRegistry, default_registry

#: iqabench's working folder under the data root
WORK_DIR = ".iqabench-download"
#: the record of what was installed, inside each dataset folder
MANIFEST = ".iqabench-download.json"
#: a meta file of DeQA-Score: its name starts with the split
META_PREFIXES = ("train_", "val_", "test_")
#: free space kept beyond the estimate, for the file system's own needs
SPARE_BYTES = 1 << 30
#: file-system errors that mean "no room"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

Say = Callable[[str], None]


@dataclass
class Outcome:
    """What happened to one dataset."""

    dataset: str
    #: "downloaded", "complete" (installed earlier by iqabench) or "present" (a complete copy iqabench did not make)
    status: str
    folder: Path
    #: records the dataset plugin reads, and image files found for them
    records: int = 0
    images: int = 0
    notes: list[str] = field(default_factory=list)


def terms_accepted_by_env() -> bool:
    return os.environ.get(ACCEPT_ENV, "").strip().lower() in ("1", "true", "yes")


def _today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f} GB"


class _Checksums:
    """``checksums.json``: what iqabench verified, by file, so a file that changes under its name is noticed."""

    def __init__(self, work: Path) -> None:
        self.path = work / "checksums.json"
        self.entries: dict[str, dict[str, Any]] = read_json(self.path)

    @staticmethod
    def key(remote: hub.Remote) -> str:
        return f"{remote.repo_type}s/{remote.repo_id}/{remote.path}"

    def check_unchanged(self, remote: hub.Remote) -> None:
        earlier = self.entries.get(self.key(remote))
        if earlier and earlier.get("etag") != remote.etag:
            raise SourceChangedError(
                f"{remote.label} changed since iqabench verified it on {earlier.get('verified', '?')} (checksum "
                f"{str(earlier.get('etag'))[:12]}... then, {remote.etag[:12]}... now); to accept the new version, "
                f"delete its entry from {self.path}."
            )

    def verified(self, remote: hub.Remote, path: Path) -> bool:
        earlier = self.entries.get(self.key(remote))
        return bool(earlier) and earlier.get("etag") == remote.etag and earlier.get("size") == path.stat().st_size

    def record(self, remote: hub.Remote, sha256: str, size: int) -> None:
        self.entries[self.key(remote)] = {
            "etag": remote.etag, "sha256": sha256, "size": size, "commit": remote.commit, "verified": _today(),
        }
        atomic_write_json(self.path, self.entries)


def _image_files(folder: Path) -> int:
    """Image files under ``folder`` (any format Pillow opens), for the count check."""
    from iqabench.scoring.image_files import image_extensions

    extensions = image_extensions()
    return sum(
        1 for _, _, names in os.walk(folder) for name in names if os.path.splitext(name)[1].lower() in extensions
    )


def _read_dataset(cls: type, folder: Path) -> tuple[Any, int]:
    """``(index, missing images)`` as the plugin reads ``folder``; its warnings stay in the provenance."""
    dataset = cls(root=folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = dataset.load()
    return index, len(dataset.missing_images(index))


def _complete(cls: type, folder: Path) -> tuple[bool, int]:
    """Whether the plugin reads ``folder`` with every labelled image present; the record count."""
    try:
        index, missing = _read_dataset(cls, folder)
    except (IQABenchError, OSError, ValueError):
        return False, 0
    return missing == 0, len(index.records)


def _no_space(where: Path, what: str, kept: str) -> DownloadError:
    free = shutil.disk_usage(where).free if where.exists() else 0
    return DownloadError(
        f"no space left on the disk of {where} while {what} ({_gb(free)} free); {kept} Free space, or pass --root on "
        "a larger disk, and run the same command again."
    )


class Downloader:
    """Downloads the registered datasets that declare a ``download`` into one data root."""

    def __init__(
        self,
        data_root: str | os.PathLike,
        *,
        source: str = DEFAULT_SOURCE,
        registry: PluginRegistry | None = None,
        keep_archives: bool = False,
        say: Say = print,
    ) -> None:
        if source not in SOURCES:
            raise UnknownNameError(
                f"unknown source {source!r}; one of {', '.join(SOURCES)}.{did_you_mean(source, SOURCES)}"
            )
        self.data_root = Path(os.path.expanduser(str(data_root)))
        self.source = source
        self.registry = registry or default_registry()
        self.table = downloadable(self.registry)
        self.keep_archives = keep_archives
        self.say = say
        self.work = self.data_root / WORK_DIR

    # -- the steps before any download ----------------------------------------------------------
    def _dataset_class(self, name: str) -> type:
        return self.registry.get("dataset", name).cls

    def target(self, name: str) -> Path:
        return self.data_root / self._dataset_class(name).default_dir

    def installed(self, name: str) -> Outcome | None:
        """An outcome when ``name`` needs no download; None when it does. Refuses to replace a stranger's folder."""
        target = self.target(name)
        if not target.exists():
            return None
        complete, records = _complete(self._dataset_class(name), target)
        manifest = read_json(target / MANIFEST)
        if manifest:
            if complete and manifest.get("source") == self.source:
                return Outcome(name, "complete", target, records, records,
                               [f"downloaded {manifest.get('downloaded', '?')} from {self.source}"])
            return None  # iqabench's own folder, incomplete or from the other source: replaced
        if complete:
            return Outcome(name, "present", target, records, records, ["a complete copy iqabench did not make"])
        raise DownloadError(
            f"{target} exists, is not complete and was not made by `iqabench data download`: nothing was changed. "
            "Move it away (or complete it by hand, see `iqabench data check`), or download into another --root."
        )

    def terms(self, names: Sequence[str]) -> list[str]:
        """The terms of the repositories the files come from, then each dataset's own."""
        shared = [item.terms for name in names for item in self.table[name].files(self.source) if item.terms]
        return list(dict.fromkeys(shared)) + [f"{name}: {self.table[name].terms}" for name in names]

    # -- the whole run ---------------------------------------------------------------------------
    def run(self, names: Sequence[str], *, accept_terms: bool = False) -> list[Outcome]:
        """Download what is missing of ``names``, holding the data root's download lock throughout.

        Two downloads into one root would write the same partial files and staging folders; the second is
        refused at once, naming the first.
        """
        wanted = resolve_names(names, self.table)
        self.work.mkdir(parents=True, exist_ok=True)

        def refusal(holder: str) -> DownloadError:
            return DownloadError(
                f"another download into {self.data_root} is running ({holder}); wait for it to finish, then run "
                "the same command again (it skips what is complete)."
            )

        with locks.held(self.work / "download.lock", self.work / "download.lock.json", command_line(), refusal):
            return self._run(wanted, accept_terms)

    def _run(self, wanted: list[str], accept_terms: bool) -> list[Outcome]:
        outcomes: dict[str, Outcome] = {}
        pending: list[str] = []
        for name in wanted:
            done = self.installed(name)
            if done is None:
                pending.append(name)
            else:
                outcomes[name] = done
                self.say(f"{name}: {'already complete' if done.status == 'complete' else 'found'} at {done.folder} "
                         f"({done.records} records; {'; '.join(done.notes)}); skipped.")
        if pending:
            self.say("Terms of use of what will be downloaded:")
            for line in self.terms(pending):
                self.say(f"  - {line}")
            restricted = [name for name in pending if self.table[name].restricted]
            if restricted and not (accept_terms or terms_accepted_by_env()):
                raise DownloadError(
                    f"the terms of {', '.join(restricted)} restrict their use (printed above); read them, then run "
                    f"again with --accept-terms (or {ACCEPT_ENV}=1) to download."
                )
        for name in pending:
            outcomes[name] = self.download(name)
        return [outcomes[name] for name in wanted]

    # -- one dataset -----------------------------------------------------------------------------
    def _describe(self, name: str, row: DatasetSource) -> tuple[hub.Remote, list[hub.Remote]]:
        """The Hub's description of the archive and the metas this source takes, checked against the table."""
        archive: hub.Remote | None = None
        metas: list[hub.Remote] = []
        for item in row.files(self.source):
            if isinstance(item, HubFile):
                archive = hub.describe(item.repo_id, item.path, repo_type=item.repo_type, revision=item.revision)
                _check_published(item, archive)
            else:
                metas += [hub.describe(item.repo_id, path, repo_type=item.repo_type, revision=item.revision)
                          for path in _meta_paths(item)]
        assert archive is not None, f"the download of {name} names no archive"
        return archive, metas

    def _check_space(self, remotes: list[hub.Remote], files: Path) -> None:
        to_fetch = 0
        for remote in remotes:
            if remote.size is None or hub.in_user_cache(remote):
                continue
            have, part = hub.local_path(files, remote), hub.partial_path(files, remote)
            done = have.stat().st_size if have.is_file() else part.stat().st_size if part.is_file() else 0
            to_fetch += max(remote.size - done, 0)
        unpacked = sum(remote.size or 0 for remote in remotes)  # images barely compress: about the archive's size
        need = to_fetch + unpacked + SPARE_BYTES
        self.data_root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.data_root).free
        if free < need:
            raise DownloadError(
                f"not enough free space on the disk of {self.data_root}: about {_gb(need)} needed ({_gb(to_fetch)} to "
                f"download, {_gb(unpacked)} to unpack, 1 GB spare), {_gb(free)} free. Free space or pass --root on a "
                "larger disk; nothing was downloaded."
            )

    def _fetch_checked(self, remote: hub.Remote, folder: Path, checksums: _Checksums) -> Path:
        """The file's local path, downloaded if needed and checked against the Hub's checksum."""
        cached = hub.in_user_cache(remote)
        path = cached or hub.fetch(remote, folder, desc=f"{Path(remote.path).name}")
        if checksums.verified(remote, path):
            return path
        sha256, blob = hub.file_hashes(path, desc=f"checking {Path(remote.path).name}")
        try:
            hub.check_bytes(path, remote, sha256, blob)
        except SourceChangedError:
            if cached is None:
                path.unlink(missing_ok=True)
            raise
        checksums.record(remote, sha256, path.stat().st_size)
        return path

    def download(self, name: str) -> Outcome:
        row = self.table[name]
        cls = self._dataset_class(name)
        target = self.target(name)
        files = self.work / "files" / name
        staging = self.work / "staging" / name
        wanted = [f"{item.repo_id}/{item.path if isinstance(item, HubFile) else item.folder + '/'}"
                  for item in row.files(self.source)]
        self.say(f"{name}: asking {hub.endpoint()} for {' and '.join(wanted)}")
        archive, metas = self._describe(name, row)
        checksums = _Checksums(self.work)
        for remote in (archive, *metas):
            checksums.check_unchanged(remote)
        self._check_space([archive, *metas], files)
        try:
            archive_path = self._fetch_checked(archive, files, checksums)
            meta_paths = [self._fetch_checked(remote, files / "metas", checksums) for remote in metas]
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise _no_space(self.data_root, f"downloading {name}", "the partial download is kept.") from None
            raise
        try:
            outcome = self._install(name, row, cls, archive_path, meta_paths, [archive, *metas], staging, target,
                                    checksums)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if exc.errno in NO_SPACE:
                kept = "nothing was installed; the download is kept."
                raise _no_space(self.data_root, f"unpacking {name}", kept) from None
            raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)
        if not self.keep_archives:
            shutil.rmtree(files, ignore_errors=True)
        return outcome

    def _install(
        self, name: str, row: DatasetSource, cls: type, archive_path: Path, meta_paths: list[Path],
        remotes: list[hub.Remote], staging: Path, target: Path, checksums: _Checksums,
    ) -> Outcome:
        shutil.rmtree(staging, ignore_errors=True)
        unpack(archive_path, staging)
        named = staging / row.archive_folder if row.archive_folder else None
        content = named if named is not None and named.is_dir() else single_top_folder(staging)
        if meta_paths:
            (content / "metas").mkdir(exist_ok=True)
            for path in meta_paths:
                shutil.copyfile(path, content / "metas" / path.name)
        records, images, notes = self._verify(name, row, cls, content)
        atomic_write_json(content / MANIFEST, {
            "dataset": name,
            "source": self.source,
            "downloaded": _today(),
            "records": records,
            "image_files": images,
            "files": [
                {"repo": f"{r.repo_type}s/{r.repo_id}", "path": r.path, "commit": r.commit,
                 "sha256": checksums.entries.get(checksums.key(r), {}).get("sha256"), "size": r.size}
                for r in remotes
            ],
        })
        if target.exists() or target.is_symlink():  # only iqabench's own folder gets here (see installed())
            old = self.work / "replaced" / name
            shutil.rmtree(old, ignore_errors=True)
            old.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, old)
            os.replace(content, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(content, target)
        self.say(f"{name}: installed at {target} ({records} records, {images} image files).")
        return Outcome(name, "downloaded", target, records, images, notes)

    def _verify(self, name: str, row: DatasetSource, cls: type, folder: Path) -> tuple[int, int, list[str]]:
        """Read the unpacked folder with the dataset's plugin; an error unless it is complete and counts right."""
        images = _image_files(folder)
        if images < row.images:
            raise SourceChangedError(
                f"{name}: the archive holds {images} image files, the official count is {row.images}: the "
                "source changed or the archive is incomplete; nothing was installed."
            )
        try:
            index, missing = _read_dataset(cls, folder)
        except IQABenchError as exc:
            first = str(exc).strip().splitlines()[0]
            hint = " (--source deqa-score adds the DeQA-Score metas as labels)" if self.source == "pyiqa" else ""
            raise SourceChangedError(
                f"{name}: the unpacked files cannot be read as {cls.title}{hint}: {first} Nothing was installed."
            ) from None
        if missing:
            raise SourceChangedError(
                f"{name}: {missing} of the {len(index.records)} images the labels name are not in the archive; "
                "nothing was installed."
            )
        notes = [f"labels: {index.provenance.split_source}"] + list(index.provenance.warnings)
        return len(index.records), images, notes


def _check_published(published: HubFile, remote: hub.Remote) -> None:
    """The Hub's description of a file against what its publisher stated (the table)."""
    if published.sha256 and remote.etag != published.sha256:
        raise SourceChangedError(
            f"{remote.label} is not the file iqabench knows (sha256 {remote.etag[:12]}... on the Hub, "
            f"{published.sha256[:12]}... in {published.evidence}): the source changed; nothing was downloaded."
        )
    if published.size is not None and remote.size is not None and remote.size != published.size:
        raise SourceChangedError(
            f"{remote.label} has {remote.size} bytes on the Hub, {published.size} in {published.evidence}: the "
            "source changed; nothing was downloaded."
        )


def _meta_paths(metas: HubMetas) -> list[str]:
    """The meta files in the folder (``<split>_*.json``); an error when one the publisher names is gone."""
    listed = hub.list_folder(metas.repo_id, metas.folder, repo_type=metas.repo_type, revision=metas.revision)
    names = {Path(path).name: path for path in listed}
    gone = [name for name in metas.required if name not in names]
    if gone:
        raise SourceChangedError(
            f"{metas.repo_id}/{metas.folder}/ no longer has {', '.join(gone)} (named by {metas.evidence}): the source "
            "changed; nothing was downloaded."
        )
    return [path for name, path in sorted(names.items())
            if name.lower().endswith(".json") and name.lower().startswith(META_PREFIXES)]


def download_datasets(
    names: Sequence[str],
    data_root: str | os.PathLike,
    *,
    source: str = DEFAULT_SOURCE,
    accept_terms: bool = False,
    keep_archives: bool = False,
    registry: PluginRegistry | None = None,
    say: Say = print,
) -> list[Outcome]:
    """Download ``names`` (``all``: every dataset that declares a ``download``) into ``data_root``; one outcome each."""
    downloader = Downloader(data_root, source=source, registry=registry, keep_archives=keep_archives, say=say)
    return downloader.run(names, accept_terms=accept_terms)
