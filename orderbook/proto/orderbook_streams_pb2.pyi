from orderbook.proto import orderbook_pb2 as _orderbook_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BookRequest(_message.Message):
    __slots__ = ("symbol", "depth")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    depth: int
    def __init__(self, symbol: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class SymbolList(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolState]
    def __init__(self, symbols: _Optional[_Iterable[_Union[SymbolState, _Mapping]]] = ...) -> None: ...

class SymbolState(_message.Message):
    __slots__ = ("symbol", "exchanges", "exchanges_in_step")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    EXCHANGES_FIELD_NUMBER: _ClassVar[int]
    EXCHANGES_IN_STEP_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    exchanges: _containers.RepeatedScalarFieldContainer[str]
    exchanges_in_step: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbol: _Optional[str] = ..., exchanges: _Optional[_Iterable[str]] = ..., exchanges_in_step: _Optional[_Iterable[str]] = ...) -> None: ...
