"""Scenario transport: what reading a frame off a WebSocket costs, beyond the bytes.

A loopback WebSocket server (in the measuring process, as a greenlet) writes 20,000 recorded Binance frames at once,
as a backlog on the socket is after a burst; the client reads them through the service's own transport
(:func:`orderbook.stream.websocket_connector`, the frames cut from a buffer by
:mod:`orderbook.websocket_frames`) and, in the same run, through websocket-client's own frame reader
(``recv_data``), the reader the service used before: the ratio of the two holds on any machine. Runs in a child
process started with :func:`orderbook.boot.boot`, monkey-patched as the server is.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from tests.bench.report import Figure

FRAMES = 20_000
ROUNDS = 3


def transport(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    frames = 2_000 if quick else FRAMES
    done = subprocess.run([sys.executable, "-m", "tests.bench.transport", str(frames)], check=True,
                          capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout)
    ours, theirs = result["service_us_per_frame"], result["websocket_client_us_per_frame"]
    return [
        Figure("read us/frame (service)", ours, "us"),
        Figure("read us/frame (websocket-client)", theirs, "us"),
        Figure("read cost service/websocket-client", ours / theirs, "ratio"),
    ], result


def _measure(frames: int) -> dict[str, Any]:
    from orderbook.boot import boot

    boot(grpc=False)
    import base64
    import hashlib
    import time

    import gevent
    import websocket
    from gevent.server import StreamServer

    from orderbook.stream import websocket_connector
    from tests.recordings import data_sets

    payloads = [text.encode() for data_set in data_sets("binance") for text in data_set.frames]
    chosen = [payloads[i % len(payloads)] for i in range(frames)]
    wire = b"".join(_frame(payload) for payload in chosen)

    def handle(sock: Any, _address: Any) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += sock.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        sock.sendall(wire)
        gevent.sleep(60)

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    url = f"ws://127.0.0.1:{server.server_port}/ws"
    connect = websocket_connector(connect_timeout=5, read_timeout=10, max_frame_bytes=1 << 20)

    def timed(read: Callable[[], object], close: Callable[[], object]) -> float:
        """Seconds to read all but the first frame (read before the clock starts, the kernel's buffers then left to
        fill: the rest waits, as after a burst)."""
        read()
        gevent.sleep(0.2)
        started = time.perf_counter()
        for _ in range(frames - 1):
            read()
        spent = time.perf_counter() - started
        close()
        return spent

    def service() -> float:
        stream = connect(url)
        return timed(stream.recv, stream.close)

    def websocket_client() -> float:
        ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True, enable_multithread=True)
        return timed(ws.recv_data, ws.close)

    ours, theirs = [], []
    for _ in range(ROUNDS):  # alternately, so neither always runs on the warmer process
        ours.append(service())
        theirs.append(websocket_client())
    server.stop()
    per_frame = 1e6 / (frames - 1)
    return {"frames": frames, "payload_bytes": sum(map(len, chosen)) / frames,
            "service_us_per_frame": statistics.median(ours) * per_frame,
            "websocket_client_us_per_frame": statistics.median(theirs) * per_frame}


def _frame(payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]))))
