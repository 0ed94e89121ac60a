from orderbook.proto import orderbook_streams_pb2 as _orderbook_streams_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("epoch", "sequence", "published_unix_nanos", "node", "update", "heartbeat", "mac")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    sequence: int
    published_unix_nanos: int
    node: str
    update: SymbolUpdate
    heartbeat: Heartbeat
    mac: bytes
    def __init__(self, epoch: _Optional[int] = ..., sequence: _Optional[int] = ..., published_unix_nanos: _Optional[int] = ..., node: _Optional[str] = ..., update: _Optional[_Union[SymbolUpdate, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., mac: _Optional[bytes] = ...) -> None: ...

class SymbolUpdate(_message.Message):
    __slots__ = ("symbol", "summary", "state")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    summary: bytes
    state: _orderbook_streams_pb2.SymbolState
    def __init__(self, symbol: _Optional[str] = ..., summary: _Optional[bytes] = ..., state: _Optional[_Union[_orderbook_streams_pb2.SymbolState, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("symbols", "depth")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    depth: int
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., depth: _Optional[int] = ...) -> None: ...
