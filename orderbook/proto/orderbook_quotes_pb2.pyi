from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUY: _ClassVar[Side]
    SELL: _ClassVar[Side]
BUY: Side
SELL: Side

class QuoteRequest(_message.Message):
    __slots__ = ("symbol", "side", "amount", "net_of_fees")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    NET_OF_FEES_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    side: Side
    amount: float
    net_of_fees: bool
    def __init__(self, symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., amount: _Optional[float] = ..., net_of_fees: _Optional[bool] = ...) -> None: ...

class QuoteUpdate(_message.Message):
    __slots__ = ("amount", "filled", "average_price", "worst_price", "cost", "fills")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FILLED_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    WORST_PRICE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    FILLS_FIELD_NUMBER: _ClassVar[int]
    amount: float
    filled: float
    average_price: float
    worst_price: float
    cost: float
    fills: _containers.RepeatedCompositeFieldContainer[Fill]
    def __init__(self, amount: _Optional[float] = ..., filled: _Optional[float] = ..., average_price: _Optional[float] = ..., worst_price: _Optional[float] = ..., cost: _Optional[float] = ..., fills: _Optional[_Iterable[_Union[Fill, _Mapping]]] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("exchange", "amount", "average_price")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    amount: float
    average_price: float
    def __init__(self, exchange: _Optional[str] = ..., amount: _Optional[float] = ..., average_price: _Optional[float] = ...) -> None: ...
