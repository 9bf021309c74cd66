from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryExplanation(_message.Message):
    __slots__ = ("allowed", "plan_hash", "report_json")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    plan_hash: str
    report_json: str
    def __init__(self, allowed: _Optional[bool] = ..., plan_hash: _Optional[str] = ..., report_json: _Optional[str] = ...) -> None: ...

class QueryStatusRequest(_message.Message):
    __slots__ = ("query_id",)
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    def __init__(self, query_id: _Optional[str] = ...) -> None: ...

class QueryStatus(_message.Message):
    __slots__ = ("query_id", "state", "waiting_for", "reason", "result", "plan_hash", "risk_result")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    RISK_RESULT_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    state: str
    waiting_for: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    result: QueryResult
    plan_hash: str
    risk_result: RiskResult
    def __init__(self, query_id: _Optional[str] = ..., state: _Optional[str] = ..., waiting_for: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., result: _Optional[_Union[QueryResult, _Mapping]] = ..., plan_hash: _Optional[str] = ..., risk_result: _Optional[_Union[RiskResult, _Mapping]] = ...) -> None: ...

class ListPendingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ApprovalNeed(_message.Message):
    __slots__ = ("institution", "approvers", "quorum", "valid_for_hours")
    INSTITUTION_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_HOURS_FIELD_NUMBER: _ClassVar[int]
    institution: str
    approvers: _containers.RepeatedScalarFieldContainer[str]
    quorum: int
    valid_for_hours: int
    def __init__(self, institution: _Optional[str] = ..., approvers: _Optional[_Iterable[str]] = ..., quorum: _Optional[int] = ..., valid_for_hours: _Optional[int] = ...) -> None: ...

class PendingQuery(_message.Message):
    __slots__ = ("query_id", "analyst", "dataset", "purpose", "plan_hash", "plan_json", "needs", "waiting_for", "submitted_ms")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    ANALYST_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_MS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    analyst: str
    dataset: str
    purpose: str
    plan_hash: str
    plan_json: str
    needs: _containers.RepeatedCompositeFieldContainer[ApprovalNeed]
    waiting_for: _containers.RepeatedScalarFieldContainer[str]
    submitted_ms: int
    def __init__(self, query_id: _Optional[str] = ..., analyst: _Optional[str] = ..., dataset: _Optional[str] = ..., purpose: _Optional[str] = ..., plan_hash: _Optional[str] = ..., plan_json: _Optional[str] = ..., needs: _Optional[_Iterable[_Union[ApprovalNeed, _Mapping]]] = ..., waiting_for: _Optional[_Iterable[str]] = ..., submitted_ms: _Optional[int] = ...) -> None: ...

class ListPendingResponse(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[PendingQuery]
    def __init__(self, queries: _Optional[_Iterable[_Union[PendingQuery, _Mapping]]] = ...) -> None: ...

class ApprovalDecision(_message.Message):
    __slots__ = ("query_id", "signed_approval_json")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_APPROVAL_JSON_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    signed_approval_json: str
    def __init__(self, query_id: _Optional[str] = ..., signed_approval_json: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetInfo]
    def __init__(self, datasets: _Optional[_Iterable[_Union[DatasetInfo, _Mapping]]] = ...) -> None: ...

class DatasetInfo(_message.Message):
    __slots__ = ("name", "description", "columns", "schema_hash", "nodes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_HASH_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnInfo]
    schema_hash: str
    nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnInfo, _Mapping]]] = ..., schema_hash: _Optional[str] = ..., nodes: _Optional[_Iterable[str]] = ...) -> None: ...

class ColumnInfo(_message.Message):
    __slots__ = ("name", "kind", "scale", "min", "max", "domain", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    scale: int
    min: str
    max: str
    domain: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., scale: _Optional[int] = ..., min: _Optional[str] = ..., max: _Optional[str] = ..., domain: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class AggregateSpec(_message.Message):
    __slots__ = ("func", "column")
    FUNC_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    func: str
    column: str
    def __init__(self, func: _Optional[str] = ..., column: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("dataset", "aggregates", "where", "group_by", "purpose")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    aggregates: _containers.RepeatedCompositeFieldContainer[AggregateSpec]
    where: str
    group_by: str
    purpose: str
    def __init__(self, dataset: _Optional[str] = ..., aggregates: _Optional[_Iterable[_Union[AggregateSpec, _Mapping]]] = ..., where: _Optional[str] = ..., group_by: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("int_value", "decimal_value", "float_value", "null")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DECIMAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    NULL_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    decimal_value: str
    float_value: float
    null: bool
    def __init__(self, int_value: _Optional[int] = ..., decimal_value: _Optional[str] = ..., float_value: _Optional[float] = ..., null: _Optional[bool] = ...) -> None: ...

class ResultRow(_message.Message):
    __slots__ = ("group", "values", "suppressed_by")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_BY_FIELD_NUMBER: _ClassVar[int]
    group: str
    values: _containers.RepeatedCompositeFieldContainer[Value]
    suppressed_by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., suppressed_by: _Optional[_Iterable[str]] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("total_ms", "mpc_ms", "local_ms")
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    MPC_MS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_MS_FIELD_NUMBER: _ClassVar[int]
    total_ms: float
    mpc_ms: float
    local_ms: float
    def __init__(self, total_ms: _Optional[float] = ..., mpc_ms: _Optional[float] = ..., local_ms: _Optional[float] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("query_id", "plan_hash", "dataset", "group_by", "columns", "rows", "timing", "sequence", "controls_json")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_JSON_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    plan_hash: str
    dataset: str
    group_by: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[ResultRow]
    timing: Timing
    sequence: int
    controls_json: str
    def __init__(self, query_id: _Optional[str] = ..., plan_hash: _Optional[str] = ..., dataset: _Optional[str] = ..., group_by: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[ResultRow, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., sequence: _Optional[int] = ..., controls_json: _Optional[str] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("model_json", "sealed_weights_json")
    MODEL_JSON_FIELD_NUMBER: _ClassVar[int]
    SEALED_WEIGHTS_JSON_FIELD_NUMBER: _ClassVar[int]
    model_json: str
    sealed_weights_json: str
    def __init__(self, model_json: _Optional[str] = ..., sealed_weights_json: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "model_json", "owner", "name", "weights_secret", "registered_ms")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_JSON_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SECRET_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_MS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_json: str
    owner: str
    name: str
    weights_secret: bool
    registered_ms: int
    def __init__(self, model_id: _Optional[str] = ..., model_json: _Optional[str] = ..., owner: _Optional[str] = ..., name: _Optional[str] = ..., weights_secret: _Optional[bool] = ..., registered_ms: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class ScoreJob(_message.Message):
    __slots__ = ("model_id", "keys", "key_column")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    key_column: str
    def __init__(self, model_id: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., key_column: _Optional[str] = ...) -> None: ...

class ConcentrationJob(_message.Message):
    __slots__ = ("keys", "group_by", "key_column", "column", "limit", "hhi", "hhi_limit")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    HHI_FIELD_NUMBER: _ClassVar[int]
    HHI_LIMIT_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    group_by: str
    key_column: str
    column: str
    limit: str
    hhi: str
    hhi_limit: int
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., group_by: _Optional[str] = ..., key_column: _Optional[str] = ..., column: _Optional[str] = ..., limit: _Optional[str] = ..., hhi: _Optional[str] = ..., hhi_limit: _Optional[int] = ...) -> None: ...

class QuantileJob(_message.Message):
    __slots__ = ("column", "levels", "grid_size")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    GRID_SIZE_FIELD_NUMBER: _ClassVar[int]
    column: str
    levels: _containers.RepeatedScalarFieldContainer[str]
    grid_size: int
    def __init__(self, column: _Optional[str] = ..., levels: _Optional[_Iterable[str]] = ..., grid_size: _Optional[int] = ...) -> None: ...

class HistogramJob(_message.Message):
    __slots__ = ("column", "edges")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    column: str
    edges: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, column: _Optional[str] = ..., edges: _Optional[_Iterable[str]] = ...) -> None: ...

class RiskQueryRequest(_message.Message):
    __slots__ = ("dataset", "purpose", "where", "score", "concentration", "quantiles", "histogram")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    QUANTILES_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    purpose: str
    where: str
    score: ScoreJob
    concentration: ConcentrationJob
    quantiles: QuantileJob
    histogram: HistogramJob
    def __init__(self, dataset: _Optional[str] = ..., purpose: _Optional[str] = ..., where: _Optional[str] = ..., score: _Optional[_Union[ScoreJob, _Mapping]] = ..., concentration: _Optional[_Union[ConcentrationJob, _Mapping]] = ..., quantiles: _Optional[_Union[QuantileJob, _Mapping]] = ..., histogram: _Optional[_Union[HistogramJob, _Mapping]] = ...) -> None: ...

class QuantileValue(_message.Message):
    __slots__ = ("level", "value", "suppressed")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    level: str
    value: str
    suppressed: bool
    def __init__(self, level: _Optional[str] = ..., value: _Optional[str] = ..., suppressed: _Optional[bool] = ...) -> None: ...

class HistogramBin(_message.Message):
    __slots__ = ("low", "high", "count")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    low: str
    high: str
    count: int
    def __init__(self, low: _Optional[str] = ..., high: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class RiskResult(_message.Message):
    __slots__ = ("query_id", "plan_hash", "dataset", "kind", "model_id", "scores", "score_denominator", "probabilities", "decisions", "count", "units", "over_limit", "hhi", "hhi_over_limit", "quantiles", "bins", "timing", "sequence", "rounds", "controls_json")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_HASH_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    SCORE_DENOMINATOR_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HHI_FIELD_NUMBER: _ClassVar[int]
    HHI_OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    QUANTILES_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_JSON_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    plan_hash: str
    dataset: str
    kind: str
    model_id: str
    scores: _containers.RepeatedScalarFieldContainer[str]
    score_denominator: str
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    decisions: _containers.RepeatedScalarFieldContainer[bool]
    count: int
    units: _containers.RepeatedScalarFieldContainer[str]
    over_limit: _containers.RepeatedScalarFieldContainer[bool]
    hhi: str
    hhi_over_limit: bool
    quantiles: _containers.RepeatedCompositeFieldContainer[QuantileValue]
    bins: _containers.RepeatedCompositeFieldContainer[HistogramBin]
    timing: Timing
    sequence: int
    rounds: int
    controls_json: str
    def __init__(self, query_id: _Optional[str] = ..., plan_hash: _Optional[str] = ..., dataset: _Optional[str] = ..., kind: _Optional[str] = ..., model_id: _Optional[str] = ..., scores: _Optional[_Iterable[str]] = ..., score_denominator: _Optional[str] = ..., probabilities: _Optional[_Iterable[float]] = ..., decisions: _Optional[_Iterable[bool]] = ..., count: _Optional[int] = ..., units: _Optional[_Iterable[str]] = ..., over_limit: _Optional[_Iterable[bool]] = ..., hhi: _Optional[str] = ..., hhi_over_limit: _Optional[bool] = ..., quantiles: _Optional[_Iterable[_Union[QuantileValue, _Mapping]]] = ..., bins: _Optional[_Iterable[_Union[HistogramBin, _Mapping]]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., sequence: _Optional[int] = ..., rounds: _Optional[int] = ..., controls_json: _Optional[str] = ...) -> None: ...
