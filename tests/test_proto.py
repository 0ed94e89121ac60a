"""The committed generated code must match proto/*.proto, and each proto must match its published text.

Comparing descriptors (not generated text) keeps the test independent of the generator's version header. The type
stubs have no descriptor, and no version header: they are compared as text.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from orderbook.proto import orderbook_pb2, orderbook_quotes_pb2, orderbook_relay_pb2, orderbook_streams_pb2
from orderbook.proto.generate import PROTO_FILES, generate, protoc_include, stub_path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
CONTRACT_SHA256 = {
    "orderbook.proto": "049f943f4843a81d3412ff7ef9d1f4d01cadc413205c02e20727cd4907ff0b09",
    "orderbook_streams.proto": "e74e937e3f5f35f1666c28f5acab37ebd2fbd3c375919d36a9942d9acdb01ded",
    "orderbook_quotes.proto": "8b6304bca3019c4148a2177db9094ff22e7ac04492cd07527c7adbae0bd0754f",
}
"""Each proto is an interface other clients are built against: never changed, extended beside (issue 14 gave the
text of orderbook_streams.proto, issue 24 that of orderbook_quotes.proto)."""

GENERATED: dict[str, ModuleType] = {"orderbook.proto": orderbook_pb2, "orderbook_streams.proto": orderbook_streams_pb2,
                                    "orderbook_relay.proto": orderbook_relay_pb2,
                                    "orderbook_quotes.proto": orderbook_quotes_pb2}
"""In dependency order, as generate.py compiles them."""


def compile_descriptors(out: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    status = protoc.main(
        ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{protoc_include()}", f"--descriptor_set_out={out}",
         *(str(PROTO_DIR / name) for name in GENERATED)]
    )
    assert status == 0, "protoc failed on proto/"
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    compiled = {file.name: file for file in descriptor_set.file}
    assert list(compiled) == list(GENERATED)
    # protoc's descriptor set spells out each field's json_name; the Python generator leaves that derived
    # value out of the descriptor it embeds. Drop it so only real differences count.
    for file in compiled.values():
        for message in file.message_type:
            for field in message.field:
                field.ClearField("json_name")
    return compiled


def test_every_proto_is_generated() -> None:
    assert [proto.name for proto in PROTO_FILES] == list(GENERATED)
    assert sorted(GENERATED) == sorted(p.name for p in PROTO_DIR.glob("*.proto"))


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_module_matches_proto(tmp_path: Path, name: str) -> None:
    compiled = compile_descriptors(tmp_path / "protos.desc")[name]
    committed = descriptor_pb2.FileDescriptorProto.FromString(GENERATED[name].DESCRIPTOR.serialized_pb)
    assert committed == compiled, f"{GENERATED[name].__name__} is stale: run python -m orderbook.proto.generate"


def test_committed_type_stubs_match_the_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    stale = [stub_path(proto).name for proto in PROTO_FILES
             if stub_path(proto).read_text() != stub_path(proto, tmp_path).read_text()]
    assert stale == [], f"{stale} stale: run python -m orderbook.proto.generate"


def test_generated_module_has_the_service_and_messages() -> None:
    service = orderbook_pb2.DESCRIPTOR.services_by_name["OrderbookAggregator"]
    method = service.methods_by_name["BookSummary"]
    assert method.full_name == "orderbook.OrderbookAggregator.BookSummary"
    assert method.server_streaming and not method.client_streaming
    assert method.input_type.full_name == "orderbook.Empty"
    assert method.output_type.full_name == "orderbook.Summary"
    assert [f.name for f in orderbook_pb2.Level.DESCRIPTOR.fields] == ["exchange", "price", "amount"]
    assert [f.name for f in orderbook_pb2.Summary.DESCRIPTOR.fields] == ["spread", "bids", "asks"]


def test_streams_module_has_its_service_and_messages_over_the_fixed_ones() -> None:
    service = orderbook_streams_pb2.DESCRIPTOR.services_by_name["OrderbookStreams"]
    book, symbols = service.methods_by_name["Book"], service.methods_by_name["Symbols"]
    assert (book.full_name, book.server_streaming, book.client_streaming) == ("orderbook.OrderbookStreams.Book",
                                                                             True, False)
    assert (book.input_type.full_name, book.output_type.full_name) == ("orderbook.BookRequest", "orderbook.Summary")
    assert book.output_type is orderbook_pb2.Summary.DESCRIPTOR  # the fixed message itself, not a copy
    assert (symbols.server_streaming, symbols.client_streaming) == (False, False)
    assert (symbols.input_type.full_name, symbols.output_type.full_name) == ("orderbook.Empty", "orderbook.SymbolList")
    fields = {message: [(f.name, f.number) for f in getattr(orderbook_streams_pb2, message).DESCRIPTOR.fields]
              for message in ("BookRequest", "SymbolList", "SymbolState")}
    assert fields == {"BookRequest": [("symbol", 1), ("depth", 2)], "SymbolList": [("symbols", 1)],
                      "SymbolState": [("symbol", 1), ("exchanges", 2), ("exchanges_in_step", 3)]}


def test_quotes_module_has_its_service_enum_and_messages() -> None:
    quote = orderbook_quotes_pb2.DESCRIPTOR.services_by_name["OrderbookQuotes"].methods_by_name["Quote"]
    assert (quote.full_name, quote.server_streaming, quote.client_streaming) == ("orderbook.OrderbookQuotes.Quote",
                                                                               True, False)
    assert (quote.input_type.full_name, quote.output_type.full_name) == ("orderbook.QuoteRequest",
                                                                         "orderbook.QuoteUpdate")
    assert [(v.name, v.number) for v in orderbook_quotes_pb2.Side.DESCRIPTOR.values] == [("BUY", 0), ("SELL", 1)]
    fields = {message: [(f.name, f.number) for f in getattr(orderbook_quotes_pb2, message).DESCRIPTOR.fields]
              for message in ("QuoteRequest", "QuoteUpdate", "Fill")}
    assert fields == {"QuoteRequest": [("symbol", 1), ("side", 2), ("amount", 3), ("net_of_fees", 4)],
                      "QuoteUpdate": [("amount", 1), ("filled", 2), ("average_price", 3), ("worst_price", 4),
                                      ("cost", 5), ("fills", 6)],
                      "Fill": [("exchange", 1), ("amount", 2), ("average_price", 3)]}


@pytest.mark.parametrize("name", list(CONTRACT_SHA256))
def test_proto_is_its_contract_byte_for_byte(name: str) -> None:
    assert hashlib.sha256((PROTO_DIR / name).read_bytes()).hexdigest() == CONTRACT_SHA256[name]


def test_relay_envelope_carries_a_symbols_summary_and_state_or_a_heartbeat() -> None:
    envelope = orderbook_relay_pb2.Envelope
    assert [(f.name, f.number) for f in envelope.DESCRIPTOR.fields] == [
        ("epoch", 1), ("sequence", 2), ("published_unix_nanos", 3), ("node", 4), ("update", 5), ("heartbeat", 6),
        ("mac", 7)]
    assert [f.name for f in envelope.DESCRIPTOR.oneofs_by_name["body"].fields] == ["update", "heartbeat"]
    state = orderbook_relay_pb2.SymbolUpdate.DESCRIPTOR.fields_by_name["state"]
    assert state.message_type is orderbook_streams_pb2.SymbolState.DESCRIPTOR  # the served message itself
