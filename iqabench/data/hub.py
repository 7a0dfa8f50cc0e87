"""Files from the Hugging Face Hub, fetched so that an interrupted download resumes.

Everything goes through huggingface_hub: its URLs (``HF_ENDPOINT``), its
headers (the user's token), its HEAD call (size, ETag, commit, the CDN
location of an LFS file) and its HTTP download (retries, Range requests). What
iqabench adds is a partial file that survives the process: huggingface_hub
(2.4, ``file_download._download_to_tmp_and_move``) downloads into a temporary
file that it deletes when the download fails, so a 35 GB archive cut at 90%
would start from zero. Here the partial file stays
under ``<data root>/.iqabench-download/`` and the next call asks for the
remaining bytes. A file already in the user's Hugging Face cache is used from
there without downloading.

Every file is checked before it is used: an LFS file's ETag is its sha256, a
small file's ETag is its git blob id; both are recomputed from the bytes.

:func:`offline_reason` tells at once whether anything can be fetched now: with no
network, huggingface_hub retries for the better part of a minute before it
gives up, while a model whose weights are not cached can say so immediately.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from iqabench import progress
from iqabench.errors import DownloadError, SourceChangedError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
#: bytes read per step when hashing
CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """A file on the Hub as its HEAD call describes it."""

    repo_id: str
    repo_type: str
    path: str
    revision: str
    #: the commit the revision pointed to
    commit: str
    #: sha256 for LFS files, the git blob id (sha1) for small files
    etag: str
    size: int | None
    #: where the bytes are (the CDN address for LFS files)
    url: str

    @property
    def label(self) -> str:
        return f"{self.repo_id}/{self.path}"


def endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT`` as it is now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The connection errors of whichever HTTP client this huggingface_hub uses."""
    errors: list[type[BaseException]] = []
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "RequestException")):
        with contextlib.suppress(ImportError):
            errors.append(getattr(importlib.import_module(module), name))
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn huggingface_hub's and the network's errors into one line that says what to do."""
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.OfflineModeIsEnabled:
        raise DownloadError(
            f"cannot download {what}: huggingface_hub is in offline mode (HF_HUB_OFFLINE=1); unset it to download."
        ) from None
    except (hf.GatedRepoError, hf.RepositoryNotFoundError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "")
        raise DownloadError(
            f"cannot download {what}: the Hub refused access (HTTP {status}); log in with `hf auth login` or set "
            "HF_TOKEN, and accept the repository's conditions on its Hub page if it has any."
        ) from None
    except (hf.EntryNotFoundError, hf.RevisionNotFoundError):
        raise SourceChangedError(
            f"{what} is no longer on the Hub: the source changed; the dataset's `download` (for the built-in "
            "datasets: iqabench_plugins/datasets/downloads.py) needs updating."
        ) from None
    except hf.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise DownloadError(
            f"cannot download {what}: the Hub answered HTTP {status}; run the same command again later to resume."
        ) from None
    except _transport_errors() as exc:
        if isinstance(exc, OSError) and exc.errno is not None and not hasattr(exc, "request"):
            raise  # a local file-system error (full disk, permissions): the caller reports it
        raise DownloadError(
            f"cannot reach {endpoint()} for {what} ({_first_line(exc)}); check the connection, or set HF_ENDPOINT "
            "to a mirror. Run the same command again to resume."
        ) from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # a local file-system error (full disk, permissions): the caller reports it
        raise DownloadError(  # e.g. fewer bytes than announced: what arrived is kept
            f"cannot download {what} ({_first_line(exc)}); run the same command again to resume."
        ) from None


def describe(repo_id: str, path: str, *, repo_type: str = "dataset", revision: str = "main") -> Remote:
    """One HEAD call: the file's size, ETag, commit and download address."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    base = endpoint()
    url = hf_hub_url(repo_id, path, repo_type=repo_type, revision=revision, endpoint=base)
    with hub_errors(f"{repo_id}/{path}"):
        meta = get_hf_file_metadata(url)
    if not meta.commit_hash or not meta.etag:
        raise DownloadError(
            f"{base} did not answer like the Hugging Face Hub for {repo_id}/{path} (no commit or ETag header); "
            "check HF_ENDPOINT."
        )
    return Remote(repo_id, repo_type, path, revision, meta.commit_hash, meta.etag.strip('"'), meta.size,
                  meta.location or url)


def list_folder(repo_id: str, folder: str, *, repo_type: str = "dataset", revision: str = "main") -> list[str]:
    """Paths of the files directly in ``folder`` of a repository."""
    from huggingface_hub import HfApi

    with hub_errors(f"{repo_id}/{folder}/"):
        entries = list(HfApi(endpoint=endpoint()).list_repo_tree(
            repo_id, path_in_repo=folder, repo_type=repo_type, revision=revision))
    return sorted(entry.path for entry in entries if hasattr(entry, "blob_id"))


def file_hashes(path: Path, *, desc: str = "") -> tuple[str, str]:
    """``(sha256, git blob sha1)`` of a file, read once."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {size}\0".encode())  # noqa: S324 - git's blob id, compared with the Hub's ETag
    with path.open("rb") as handle, progress.bar(total=size, desc=desc or f"checking {path.name}", unit="B",
                                                 enabled=size > 64 * CHUNK) as bar:
        while chunk := handle.read(CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
            bar.update(len(chunk))
    return sha256.hexdigest(), blob.hexdigest()


def check_bytes(path: Path, remote: Remote, sha256: str, blob: str) -> None:
    """Raise :class:`SourceChangedError` when the bytes are not the ones the Hub describes."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise SourceChangedError(
            f"{remote.label}: {size} bytes arrived, the Hub announced {remote.size}; the file was removed, run again."
        )
    expected, actual = (remote.etag, sha256) if SHA256.match(remote.etag) else (remote.etag, blob)
    if (SHA256.match(remote.etag) or GIT_SHA1.match(remote.etag)) and actual != expected:
        raise SourceChangedError(
            f"{remote.label}: checksum {actual[:12]}... does not match the Hub's {expected[:12]}...; "
            "the file was removed, nothing was installed."
        )


class _CountingWriter:
    """A file object that moves a progress bar by the bytes written through it."""

    def __init__(self, handle: BinaryIO, bar: Any) -> None:
        self._handle = handle
        self._bar = bar

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        self._bar.update(len(data))
        return written

    def truncate(self, size: int | None = None) -> int:
        result = self._handle.truncate(size)
        self._bar.reset(total=self._bar.total)  # the server ignored the Range: the download starts again
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextlib.contextmanager
def _hub_bars_off() -> Iterator[None]:
    """Silence huggingface_hub's own bar: the download shows iqabench's."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_off:
            enable_progress_bars()


def in_user_cache(remote: Remote) -> Path | None:
    """The file in the user's Hugging Face cache at the same commit, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(remote.repo_id, remote.path, revision=remote.commit, repo_type=remote.repo_type)
    return Path(found) if isinstance(found, str) else None


def local_path(folder: Path, remote: Remote) -> Path:
    """Where ``remote`` is kept once downloaded: under its ETag, so a file that changed never passes for the old one."""
    return folder / remote.etag[:16] / Path(remote.path).name


def partial_path(folder: Path, remote: Remote) -> Path:
    """Where the bytes of ``remote`` collect until they are all there."""
    final = local_path(folder, remote)
    return final.with_name(final.name + ".part")


def fetch(remote: Remote, folder: Path, *, desc: str = "") -> Path:
    """Download ``remote`` into ``folder`` (resuming a partial file left by an earlier call); its final path.

    The finished file is named as in the repository and is not yet checked
    against the ETag: :func:`check_bytes` does that.
    """
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    final = local_path(folder, remote)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_file() and (remote.size is None or final.stat().st_size == remote.size):
        return final
    part = partial_path(folder, remote)
    have = part.stat().st_size if part.is_file() else 0
    if remote.size is not None and have > remote.size:
        part.unlink()
        have = 0
    headers = build_hf_headers()
    if urlsplit(remote.url).netloc != urlsplit(endpoint()).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays on the Hub
    with part.open("ab") as handle, progress.bar(total=remote.size, initial=have, unit="B",
                                                 desc=desc or Path(remote.path).name) as bar, _hub_bars_off():
        with hub_errors(remote.label):
            http_get(remote.url, _CountingWriter(handle, bar), resume_size=have, headers=headers,
                     expected_size=remote.size, displayed_filename=Path(remote.path).name)
    os.replace(part, final)
    return final


#: seconds to wait for the hub's host to accept a connection
PROBE_TIMEOUT = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


def offline_reason(timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the hub cannot be reached now (offline mode, no connection), or ``None`` when it can (or may) be."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None  # a direct connection says nothing about the proxy's
    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or type(exc).__name__})"
    return None
