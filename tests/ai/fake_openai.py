"""A local stand-in for the OpenAI HTTP API: answers /v1/chat/completions with whatever
the test queues, and records the requests it got.

`delay` makes it wait that long before answering (a provider that hangs); `trickle` makes
it send the headers at once and then the body one byte at a time, each byte well inside any
read timeout (a provider whose answer never quite finishes). Both stop waiting when the
server shuts down, so a test never outlives its fake."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion_body(content) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": content if isinstance(content, str) else json.dumps(content),
                },
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeOpenAI:
    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[tuple[int, object]] = []
        self.delay = 0.0
        self.trickle = 0.0  # seconds between the body's bytes; 0: send it at once
        self.stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                if fake.delay and fake.stopping.wait(fake.delay):
                    return
                status, content = fake.replies.pop(0) if fake.replies else (500, "no reply")
                if status == 200:
                    body = completion_body(content)
                else:
                    body = {"error": {"message": str(content), "type": "server_error"}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not fake.trickle:
                    self.wfile.write(data)
                    return
                for byte in data:
                    if fake.stopping.wait(fake.trickle):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def refused_base_url() -> str:
    """A local address where nothing listens, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
