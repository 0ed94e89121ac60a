"""A separate client process holding many BookSummary streams: slow readers, non-readers, or victims of SIGKILL.

    python tests/clients/stream_clients.py TARGET --streams 200 [--delay 0.2 | --no-read]

Prints ``ready`` once every stream is open (has received a summary, or for ``--no-read`` has been started), then
keeps reading until stdin closes or the process is killed. Running these clients in their own process keeps
their threads (and the GIL) away from the test process that measures the normal clients.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients_support import NO_WINDOW_GROWTH, StreamGroup

START_TIMEOUT = 30.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds of sleep after each summary")
    parser.add_argument("--no-read", action="store_true", help="open the streams and never read them")
    args = parser.parse_args()
    options = NO_WINDOW_GROWTH if args.no_read else ()
    group = StreamGroup(args.target, args.streams, delay=args.delay, read=not args.no_read, options=options)
    if not args.no_read:
        deadline = time.monotonic() + START_TIMEOUT
        while group.started() < args.streams:
            if time.monotonic() > deadline:
                print(f"only {group.started()} of {args.streams} streams started", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.05)
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or kills us)
    group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
