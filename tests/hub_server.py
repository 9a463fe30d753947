"""A stand-in for the Hugging Face hub on 127.0.0.1: real HTTP, answered as huggingface_hub expects.

It serves what hf_hub_download and HfApi.list_repo_files ask for (huggingface_hub 1.x/2.x):
- HEAD and GET /<owner>/<repo>/resolve/<revision>/<path>: 200 with X-Repo-Commit, ETag (the
  file's SHA-256, as the hub gives for LFS files) and Content-Length; GET sends the bytes.
- GET /api/models/<owner>/<repo>/tree/<revision>[/<folder>]: the file list, as JSON.
- 404 with X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound (the hub's codes).
Revisions are "main" or the repo's 40-hex commit. Every request is logged in `requests`.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes] = field(default_factory=dict)


class HubStandIn:
    """Start with `with HubStandIn() as hub:`; hub.url is the HF_ENDPOINT to use."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.stall_listings = False  # answer file lists never (a hub that stalls after its first answer)
        self._stopping = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._answer(self, body=False)

            def do_GET(self):
                hub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, repo: str, files: dict[str, bytes], commit: str | None = None) -> Repo:
        commit = commit or hashlib.sha1(repr(sorted(files)).encode() + repo.encode()).hexdigest()
        self.repos[repo] = Repo(commit, dict(files))
        return self.repos[repo]

    def __enter__(self) -> "HubStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the port: later connections are refused."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    # -- answers ---------------------------------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append((h.command, path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            return self._tree(h, "/".join(parts[2:4]), parts[5], "/".join(parts[6:]), body)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
        self._send(h, 404, b"not found", {"X-Error-Code": "RepoNotFound"}, body)

    def _repo(self, h, repo_id: str, revision: str, body: bool) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._send(h, 404, b"Repository not found", {"X-Error-Code": "RepoNotFound",
                                                         "X-Error-Message": "Repository not found"}, body)
            return None
        if revision not in ("main", repo.commit):
            self._send(h, 404, b"Invalid rev id", {"X-Error-Code": "RevisionNotFound",
                                                   "X-Error-Message": "Invalid rev id: " + revision}, body)
            return None
        return repo

    def _resolve(self, h, repo_id: str, revision: str, file: str, body: bool) -> None:
        repo = self._repo(h, repo_id, revision, body)
        if repo is None:
            return
        data = repo.files.get(file)
        if data is None:
            self._send(h, 404, b"Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit,
                                                    "X-Error-Message": "Entry not found"}, body)
            return
        etag = hashlib.sha256(data).hexdigest()
        self._send(h, 200, data, {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"',
                                  "Content-Type": "application/octet-stream"}, body)

    def _tree(self, h, repo_id: str, revision: str, folder: str, body: bool) -> None:
        if self.stall_listings:
            self._stopping.wait(120)
            return
        repo = self._repo(h, repo_id, revision, body)
        if repo is None:
            return
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries = [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                   for p, b in sorted(repo.files.items()) if p.startswith(prefix)]
        self._send(h, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, body)

    @staticmethod
    def _send(h, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)


class SilentPort:
    """A port that accepts connections and never answers (a hub behind a broken proxy)."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> "SilentPort":
        return self

    def __exit__(self, *exc) -> None:
        self._sock.close()


def closed_port_url() -> str:
    """An endpoint on a port nobody listens on: connections are refused at once."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
