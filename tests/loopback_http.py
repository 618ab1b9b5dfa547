"""A real HTTP server on 127.0.0.1 that serves a folder and honours ``Range`` requests (tests and benchmarks).

``http.server`` answers ranges with the whole file; this subclass answers ``Range: bytes=a-b`` with ``206 Partial
Content`` and the asked bytes, as web servers and object stores do. It records every request (method, path, range)
so tests can check that a reader used ranges. ``/stall/NAME`` answers nothing for ``stall_seconds`` (a hung server),
a missing file is a 404.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeRequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers: one connection serves many range requests

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        server = self.server
        server.requests.append((self.command, self.path, self.headers.get("Range")))
        path = self.path
        if path.startswith("/stall/"):
            time.sleep(server.stall_seconds)
            path = path[len("/stall") :]
        file = server.root / path.lstrip("/")
        if not file.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = file.read_bytes()
        start, end = 0, len(data) - 1
        match = _RANGE.match(self.headers.get("Range", "") or "")
        if match:
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), end) if last else end
            else:  # "bytes=-N": the last N bytes
                start = max(0, len(data) - int(last))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            server.bytes_sent += end - start + 1
            self.wfile.write(data[start : end + 1])


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, stall_seconds: float = 5.0):
        super().__init__(("127.0.0.1", 0), RangeRequestHandler)
        self.root = Path(root)
        self.stall_seconds = stall_seconds
        self.requests: list[tuple[str, str, str | None]] = []
        self.bytes_sent = 0

    def handle_error(self, request, client_address):
        pass  # a reader that closes its connection early (it has the bytes it needs) is not an error

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serve_folder(root: Path, stall_seconds: float = 5.0) -> Iterator[LoopbackServer]:
    """Serve ``root`` on a free loopback port in a background thread for the duration of the block."""
    server = LoopbackServer(root, stall_seconds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":  # a server in its own process (benchmarks/bench_data.py --source http): prints its URL
    import sys

    server = LoopbackServer(Path(sys.argv[1]))
    print(server.url, flush=True)
    server.serve_forever()
