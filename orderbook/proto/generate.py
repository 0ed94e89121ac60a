"""Regenerate the ``*_pb2.py`` modules, and their ``*_pb2.pyi`` type stubs, from ``proto/*.proto``.

The generated modules are committed so that running the service needs no build step; ``tests/test_proto.py``
fails when one no longer matches its proto, and this script is the one way to bring them back in step. Only the
messages are generated: the server and client address each method by its path, so no ``_pb2_grpc`` is needed.
The stubs (protoc's own ``--pyi_out``, no plug-in needed) give mypy the messages' fields and constructors, which
the generated modules build at run time where mypy cannot see them.

``orderbook_streams.proto`` imports ``orderbook.proto``, and protoc writes that as ``import orderbook_pb2``, a
top-level module that does not exist here: the line is rewritten, in the module and in its stub, to import it from
this package. The descriptor keeps the file names ``orderbook.proto`` and ``orderbook_streams.proto``, which is
what reflection shows clients.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
PROTO_DIR = REPO_ROOT / "proto"
PROTO_FILES = (PROTO_DIR / "orderbook.proto", PROTO_DIR / "orderbook_streams.proto",
               PROTO_DIR / "orderbook_relay.proto", PROTO_DIR / "orderbook_quotes.proto")
"""In dependency order: each file's imports come before it."""

_IMPORTS = {
    "import orderbook_pb2 as orderbook__pb2\n": "from orderbook.proto import orderbook_pb2 as orderbook__pb2\n",
    "import orderbook_streams_pb2 as orderbook__streams__pb2\n":
        "from orderbook.proto import orderbook_streams_pb2 as orderbook__streams__pb2\n",
    "import orderbook_pb2 as _orderbook_pb2\n": "from orderbook.proto import orderbook_pb2 as _orderbook_pb2\n",
    "import orderbook_streams_pb2 as _orderbook_streams_pb2\n":
        "from orderbook.proto import orderbook_streams_pb2 as _orderbook_streams_pb2\n",
}


def protoc_include() -> str:
    """The well-known types shipped with grpc_tools (google/protobuf/*.proto)."""
    return str(Path(protoc.__file__).resolve().parent / "_proto")


def module_path(proto: Path, out_dir: Path = PACKAGE_DIR) -> Path:
    return out_dir / f"{proto.stem}_pb2.py"


def stub_path(proto: Path, out_dir: Path = PACKAGE_DIR) -> Path:
    return out_dir / f"{proto.stem}_pb2.pyi"


def generate(out_dir: Path = PACKAGE_DIR) -> None:
    """Run protoc with ``proto/`` as the include root, so the descriptors' file names are the bare file names."""
    args = ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{protoc_include()}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", *map(str, PROTO_FILES)]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {', '.join(map(str, PROTO_FILES))}")
    for proto in PROTO_FILES:
        for path in (module_path(proto, out_dir), stub_path(proto, out_dir)):
            text = path.read_text()
            for generated, packaged in _IMPORTS.items():
                text = text.replace(generated, packaged)
            path.write_text(text)


def main() -> int:
    generate()
    for proto in PROTO_FILES:
        print(f"generated {module_path(proto)} and {stub_path(proto).name} from {proto}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
