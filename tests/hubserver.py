"""A stand-in for the Hugging Face Hub's file endpoint, for tests (no network needed).

Serves ``HEAD`` and ``GET /{repo_id}/resolve/{revision}/{filename}`` the way
``huggingface_hub.hf_hub_download`` expects: ``X-Repo-Commit`` (40 hex digits), a quoted
``ETag`` (the sha256 of the file, as the Hub does for LFS files) and ``Content-Length``.
Errors carry the Hub's ``X-Error-Code`` header so the real client raises its real
exceptions: ``RepoNotFound``, ``RevisionNotFound`` and ``EntryNotFound`` (all 404).

Each repository holds named revisions (branches or tags) with their own files and commit
id; a revision can also be asked for by its commit id. Every request is recorded so tests
can count them (``server.count("GET")``) and inspect the headers sent.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Revision:
    commit: str
    files: dict[str, bytes] = field(default_factory=dict)


def _commit_id(repo_id: str, revision: str) -> str:
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


class HubServer:
    """A threaded HTTP server on 127.0.0.1 at a random free port.

    Use as a context manager, or call ``start()`` and ``stop()``. ``url`` is what
    ``HF_ENDPOINT`` should be set to.
    """

    def __init__(self, *, hub_headers: bool = True) -> None:
        #: False makes the server answer like a plain web server (no X-Repo-Commit/ETag).
        self.hub_headers = hub_headers
        self._repos: dict[str, dict[str, _Revision]] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- content -----------------------------------------------------------------
    def add_file(self, repo_id: str, filename: str, data: bytes, *, revision: str = "main") -> str:
        """Serve ``data`` as ``filename`` at ``revision`` of ``repo_id``; returns the commit id."""
        with self._lock:
            revisions = self._repos.setdefault(repo_id, {})
            rev = revisions.setdefault(revision, _Revision(commit=_commit_id(repo_id, revision)))
            rev.files[filename] = bytes(data)
            return rev.commit

    def commit(self, repo_id: str, revision: str = "main") -> str:
        return self._repos[repo_id][revision].commit

    # --- bookkeeping -------------------------------------------------------------
    def count(self, method: str | None = None) -> int:
        """Requests received so far, optionally only those with this HTTP method."""
        with self._lock:
            return sum(1 for r in self.requests if method is None or r.method == method)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> "HubServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                server._handle(self, send_body=False)

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, send_body=True)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down; later connections to ``url`` are refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling ------------------------------------------------------------
    def _lookup(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Map a URL path to (status, headers, body) following the Hub's conventions."""
        parts = path.lstrip("/").split("/")
        # /{org}/{name}/resolve/{revision}/{filename...}; the client quotes the revision.
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        repo_id = f"{parts[0]}/{parts[1]}"
        revision = unquote(parts[3])
        filename = unquote("/".join(parts[4:]))
        with self._lock:
            revisions = self._repos.get(repo_id)
            if revisions is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
            rev = revisions.get(revision) or next(
                (r for r in revisions.values() if r.commit == revision), None
            )
            if rev is None:
                return 404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found"
            data = rev.files.get(filename)
            if data is None:
                return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": rev.commit}, b"Entry not found"
        if not self.hub_headers:
            return 200, {}, data
        etag = hashlib.sha256(data).hexdigest()
        return 200, {"X-Repo-Commit": rev.commit, "ETag": f'"{etag}"'}, data

    def _handle(self, handler: BaseHTTPRequestHandler, *, send_body: bool) -> None:
        path = urlsplit(handler.path).path
        with self._lock:
            self.requests.append(Request(handler.command, path, {k.lower(): v for k, v in handler.headers.items()}))
        status, headers, body = self._lookup(path)
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/octet-stream" if status == 200 else "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if send_body:
            handler.wfile.write(body)
