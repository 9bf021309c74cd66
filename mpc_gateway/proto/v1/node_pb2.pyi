from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignedOrder(_message.Message):
    __slots__ = ("order", "signature", "evidence")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    order: bytes
    signature: bytes
    evidence: AuditEvidence
    def __init__(self, order: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., evidence: _Optional[_Union[AuditEvidence, _Mapping]] = ...) -> None: ...

class AuditEvidence(_message.Message):
    __slots__ = ("entry", "index", "proof", "checkpoint")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    entry: bytes
    index: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    checkpoint: str
    def __init__(self, entry: _Optional[bytes] = ..., index: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ..., checkpoint: _Optional[str] = ...) -> None: ...

class ShareBlock(_message.Message):
    __slots__ = ("name", "modulus", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODULUS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    modulus: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., modulus: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class ResultShares(_message.Message):
    __slots__ = ("node", "party_index", "blocks", "local_ms", "mpc_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PARTY_INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_MS_FIELD_NUMBER: _ClassVar[int]
    MPC_MS_FIELD_NUMBER: _ClassVar[int]
    node: str
    party_index: int
    blocks: _containers.RepeatedCompositeFieldContainer[ShareBlock]
    local_ms: float
    mpc_ms: float
    def __init__(self, node: _Optional[str] = ..., party_index: _Optional[int] = ..., blocks: _Optional[_Iterable[_Union[ShareBlock, _Mapping]]] = ..., local_ms: _Optional[float] = ..., mpc_ms: _Optional[float] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("epoch", "reason")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    reason: str
    def __init__(self, epoch: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class AbortReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionReply(_message.Message):
    __slots__ = ("epoch",)
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    def __init__(self, epoch: _Optional[int] = ...) -> None: ...
