"""The committed generated code must match proto/orderbook.proto, and the proto must match the shared original.

Comparing descriptors (not generated text) keeps the test independent of the generator's version header.
"""

from __future__ import annotations

import hashlib

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from orderbook.proto import orderbook_pb2
from orderbook.proto.generate import protoc_include

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
FIXED_CONTRACT_SHA256 = "049f943f4843a81d3412ff7ef9d1f4d01cadc413205c02e20727cd4907ff0b09"
"""proto/orderbook.proto is the fixed contract other clients are built against: never changed, extended beside."""


def compile_descriptor(out: Path) -> descriptor_pb2.FileDescriptorProto:
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{protoc_include()}",
            f"--descriptor_set_out={out}",
            str(PROTO_DIR / "orderbook.proto"),
        ]
    )
    assert status == 0, "protoc failed on proto/orderbook.proto"
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    assert [f.name for f in descriptor_set.file] == ["orderbook.proto"]
    compiled = descriptor_set.file[0]
    # protoc's descriptor set spells out each field's json_name; the Python generator leaves that derived
    # value out of the descriptor it embeds. Drop it so only real differences count.
    for message in compiled.message_type:
        for field in message.field:
            field.ClearField("json_name")
    return compiled


def test_generated_module_matches_proto(tmp_path: Path) -> None:
    compiled = compile_descriptor(tmp_path / "orderbook.desc")
    committed = descriptor_pb2.FileDescriptorProto.FromString(orderbook_pb2.DESCRIPTOR.serialized_pb)
    assert committed == compiled, "orderbook_pb2.py is stale: run python -m orderbook.proto.generate"


def test_generated_module_has_the_service_and_messages() -> None:
    service = orderbook_pb2.DESCRIPTOR.services_by_name["OrderbookAggregator"]
    method = service.methods_by_name["BookSummary"]
    assert method.full_name == "orderbook.OrderbookAggregator.BookSummary"
    assert method.server_streaming and not method.client_streaming
    assert method.input_type.full_name == "orderbook.Empty"
    assert method.output_type.full_name == "orderbook.Summary"
    assert [f.name for f in orderbook_pb2.Level.DESCRIPTOR.fields] == ["exchange", "price", "amount"]
    assert [f.name for f in orderbook_pb2.Summary.DESCRIPTOR.fields] == ["spread", "bids", "asks"]


def test_proto_is_the_fixed_contract_byte_for_byte() -> None:
    assert hashlib.sha256((PROTO_DIR / "orderbook.proto").read_bytes()).hexdigest() == FIXED_CONTRACT_SHA256
