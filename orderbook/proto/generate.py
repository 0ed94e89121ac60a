"""Regenerate ``orderbook_pb2.py`` from ``proto/orderbook.proto``.

The generated module is committed so that running the service needs no build step; ``tests/test_proto.py``
fails when it no longer matches the proto, and this script is the one way to bring it back in step. Only the
messages are generated: the server and client address the method by its path, so no ``_pb2_grpc`` is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
PROTO_DIR = REPO_ROOT / "proto"
PROTO_FILE = PROTO_DIR / "orderbook.proto"


def protoc_include() -> str:
    """The well-known types shipped with grpc_tools (google/protobuf/*.proto)."""
    return str(Path(protoc.__file__).resolve().parent / "_proto")


def generate(out_dir: Path = PACKAGE_DIR) -> None:
    """Run protoc with ``proto/`` as the include root, so the descriptor's file name is ``orderbook.proto``."""
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{protoc_include()}",
        f"--python_out={out_dir}",
        str(PROTO_FILE),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {PROTO_FILE}")


def main() -> int:
    generate()
    print(f"generated {PACKAGE_DIR / 'orderbook_pb2.py'} from {PROTO_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
