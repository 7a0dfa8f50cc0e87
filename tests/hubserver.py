"""A Hugging Face Hub on 127.0.0.1 for the endpoints huggingface_hub calls to download files.

Two servers, as on the real Hub: the Hub itself and a "CDN" on another port
(another origin), where the Hub's ``resolve`` URL of an LFS file redirects.
What huggingface_hub reads is served as the Hub serves it:

- ``HEAD|GET /datasets/<repo>/resolve/<revision>/<path>``: a small file
  answers 200 with ``ETag`` (its git blob id), ``Content-Length`` and
  ``X-Repo-Commit``; an LFS file answers 302 to the CDN with
  ``X-Linked-Etag`` (its sha256), ``X-Linked-Size`` and ``X-Repo-Commit``; a
  missing file answers 404 with ``X-Error-Code: EntryNotFound``, an unknown
  repository 404 with ``RepoNotFound``.
- ``GET /api/datasets/<repo>/tree/<revision>/<folder>``: the folder's
  entries (``type``, ``path``, ``size``, ``oid``, ``lfs``), one page.
- ``GET|HEAD <cdn>/<sha256>``: the bytes, with ``Range: bytes=N-`` answered
  206 and ``Content-Range``.

Faults for the CDN's next GETs (:meth:`FakeHub.fail_next`): ``("cut", n)``
sends the headers of the whole answer, then ``n`` bytes, then closes the
connection (a cut connection); ``("status", 503)`` answers that status.
Every request is logged with its Range and Authorization headers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = hashlib.sha1(b"iqabench fake hub commit").hexdigest()


@dataclass
class HubEntry:
    data: bytes
    lfs: bool
    #: the sha256 the Hub announces (by default that of ``data``)
    announced: str


@dataclass
class Logged:
    server: str
    method: str
    path: str
    range: str | None
    authorization: str | None


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """The Hub and its CDN on two local ports; a context manager that starts and stops them."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], HubEntry] = {}
        self.repos: set[str] = set()
        self.log: list[Logged] = []
        self.faults: deque[tuple[str, int]] = deque()
        self._servers: list[ThreadingHTTPServer] = []

    # -- content --------------------------------------------------------------------------------
    def add(
        self, repo_id: str, path: str, data: bytes, *, lfs: bool | None = None, announced: str | None = None
    ) -> str:
        """Serve ``data`` as ``repo_id/path`` (a dataset repository); its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        lfs = path.endswith((".tgz", ".tar", ".zip", ".gz")) if lfs is None else lfs
        self.files[(repo_id, path)] = HubEntry(data, lfs, announced or sha)
        self.repos.add(repo_id)
        return sha

    def fail_next(self, *faults: tuple[str, int]) -> None:
        self.faults.extend(faults)

    def requests(self, server: str, method: str = "GET") -> list[Logged]:
        return [entry for entry in self.log if entry.server == server and entry.method == method]

    # -- servers --------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def __enter__(self) -> FakeHub:
        for handler in (_hub_handler(self), _cdn_handler(self)):
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


class _Base(BaseHTTPRequestHandler):
    hub: FakeHub
    name = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _log(self) -> None:
        self.hub.log.append(Logged(self.name, self.command, self.path, self.headers.get("Range"),
                                   self.headers.get("Authorization")))

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_bytes(self, data: bytes, headers: dict[str, str], faults: bool) -> None:
        start = 0
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            start = int(wanted[len("bytes="):].split("-")[0])
        fault = self.hub.faults.popleft() if faults and self.command == "GET" and self.hub.faults else None
        if fault and fault[0] == "status":
            self._reply(fault[1], {"Content-Type": "text/plain"}, b"temporarily unavailable")
            return
        body = data[start:]
        status = 206 if start else 200
        headers = {**headers, "Content-Length": str(len(body)), "Accept-Ranges": "bytes"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault and fault[0] == "cut":
            self.wfile.write(body[: fault[1]])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def _hub_handler(hub: FakeHub) -> type[_Base]:
    class Hub(_Base):
        name = "hub"

        def do_HEAD(self) -> None:
            self._log()
            self._resolve()

        def do_GET(self) -> None:
            self._log()
            path = urlsplit(self.path).path
            if path.startswith("/api/datasets/"):
                self._tree(path)
            else:
                self._resolve()

        def _split(self, path: str, word: str) -> tuple[str, str, str] | None:
            parts = path.strip("/").split("/")
            if word not in parts:
                return None
            at = parts.index(word)
            repo = "/".join(parts[at - 2: at])
            revision = unquote(parts[at + 1])
            return repo, revision, unquote("/".join(parts[at + 2:]))

        def _resolve(self) -> None:
            found = self._split(urlsplit(self.path).path, "resolve")
            if found is None or not self.path.startswith("/datasets/"):
                self._reply(404, {"X-Error-Code": "RepoNotFound"})
                return
            repo, _, path = found
            if repo not in hub.repos:
                self._reply(404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found")
                return
            entry = hub.files.get((repo, path))
            if entry is None:
                self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, b"Entry not found")
                return
            if entry.lfs:
                self._reply(302, {
                    "Location": f"{hub.cdn}/{entry.announced}",
                    "ETag": f'"{git_blob_id(entry.data)}"',
                    "X-Linked-Etag": f'"{entry.announced}"',
                    "X-Linked-Size": str(len(entry.data)),
                    "X-Repo-Commit": COMMIT,
                })
                return
            self._send_bytes(entry.data, {"ETag": f'"{git_blob_id(entry.data)}"', "X-Repo-Commit": COMMIT},
                             faults=False)

        def _tree(self, path: str) -> None:
            found = self._split(path, "tree")
            if found is None:
                self._reply(404, {"X-Error-Code": "RepoNotFound"})
                return
            repo, _, folder = found
            entries = []
            for (owner, file_path), entry in sorted(hub.files.items()):
                if owner == repo and file_path.rpartition("/")[0] == folder:
                    item = {"type": "file", "path": file_path, "size": len(entry.data),
                            "oid": git_blob_id(entry.data)}
                    if entry.lfs:
                        item["lfs"] = {"oid": entry.announced, "size": len(entry.data), "pointerSize": 134}
                    entries.append(item)
            self._reply(200, {"Content-Type": "application/json"}, json.dumps(entries).encode())

    Hub.hub = hub
    return Hub


def _cdn_handler(hub: FakeHub) -> type[_Base]:
    class Cdn(_Base):
        name = "cdn"

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if self.command == "GET":
                self._log()
            sha = urlsplit(self.path).path.strip("/")
            entry = next((e for e in hub.files.values() if e.announced == sha), None)
            if entry is None:
                self._reply(404, {})
                return
            self._send_bytes(entry.data, {"ETag": f'"{sha}"'}, faults=True)

    Cdn.hub = hub
    return Cdn
