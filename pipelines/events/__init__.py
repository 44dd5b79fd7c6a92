"""The bot's event log: contract, incremental ingestion, join, and logged feedback.

``docs/events.md`` describes the contract and the store; the schema files are in
``schemas/events/``.
"""

from pipelines.events.contract import (
    DECISION_SCHEMA_ID,
    FEATURE_SET_VERSION,
    OUTCOME_SCHEMA_ID,
    validate_decisions,
    validate_outcomes,
    validate_reference,
)
from pipelines.events.exploration import action_distribution, sample_arm
from pipelines.events.feedback import (
    LoggedFeedback,
    LogOPE,
    WeightDiagnostics,
    evaluate_on_logs,
    importance_weights_clipped,
    logged_feedback,
    weight_diagnostics,
)
from pipelines.events.storage import (
    EventSource,
    FolderSource,
    LocalStorage,
    S3Source,
    S3Storage,
    StateStorage,
)
from pipelines.events.store import (
    IngestResult,
    ingest_events,
    joined_count,
    read_dataset,
    read_pending,
)

__all__ = [
    "DECISION_SCHEMA_ID",
    "FEATURE_SET_VERSION",
    "OUTCOME_SCHEMA_ID",
    "EventSource",
    "FolderSource",
    "IngestResult",
    "LocalStorage",
    "LogOPE",
    "LoggedFeedback",
    "S3Source",
    "S3Storage",
    "StateStorage",
    "WeightDiagnostics",
    "action_distribution",
    "evaluate_on_logs",
    "importance_weights_clipped",
    "ingest_events",
    "joined_count",
    "logged_feedback",
    "read_dataset",
    "read_pending",
    "sample_arm",
    "validate_decisions",
    "validate_outcomes",
    "validate_reference",
    "weight_diagnostics",
]
