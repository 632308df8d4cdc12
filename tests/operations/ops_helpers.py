"""Helpers for the operations tests (a plain module with a unique name, imported by the tests)."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path
from typing import Any


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 port 0 that keeps every POSTed JSON body; ``status`` is its answer."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 204
        self.received = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.paths.append(self.path)
                receiver.bodies.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()
                receiver.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?token=secret-token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def recording_command(out: Path) -> list[str]:
    """argv of a command that appends its stdin and HYDRA_ALERT_KIND as one JSON line to ``out``."""
    code = ("import json, os, sys; data = sys.stdin.read(); "
            f"open({str(out)!r}, 'a').write(json.dumps({{'stdin': json.loads(data), "
            "'kind': os.environ.get('HYDRA_ALERT_KIND'), 'message': os.environ.get('HYDRA_ALERT_MESSAGE')}) + '\\n')")
    return [sys.executable, "-c", code]


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
