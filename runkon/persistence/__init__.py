"""runkon.persistence — the ``Store`` protocol, its records, ``InMemoryStore``,
``SqliteStore`` and the SQL schema with its migrations. Owns every run, step, fan-out item,
gate decision, event, lease and notification runkon keeps. Imports nothing else of
runkon but its errors."""

from runkon.persistence._memory import InMemoryStore as InMemoryStore
from runkon.persistence._protocol import EventListener as EventListener
from runkon.persistence._protocol import NotificationStream as NotificationStream
from runkon.persistence._protocol import Store as Store
from runkon.persistence._records import ACTIVE_RUN_STATUSES as ACTIVE_RUN_STATUSES
from runkon.persistence._records import MEMO_PREFIX as MEMO_PREFIX
from runkon.persistence._records import TERMINAL_RUN_STATUSES as TERMINAL_RUN_STATUSES
from runkon.persistence._records import TERMINAL_STEP_STATUSES as TERMINAL_STEP_STATUSES
from runkon.persistence._records import CapturedOutput as CapturedOutput
from runkon.persistence._records import EventRecord as EventRecord
from runkon.persistence._records import FanOutItemRecord as FanOutItemRecord
from runkon.persistence._records import FanOutItemStatus as FanOutItemStatus
from runkon.persistence._records import FanOutItemUpdate as FanOutItemUpdate
from runkon.persistence._records import GateApproval as GateApproval
from runkon.persistence._records import GateDecision as GateDecision
from runkon.persistence._records import GateOption as GateOption
from runkon.persistence._records import GateReceipt as GateReceipt
from runkon.persistence._records import GateRecord as GateRecord
from runkon.persistence._records import NewEvent as NewEvent
from runkon.persistence._records import NewFanOutItem as NewFanOutItem
from runkon.persistence._records import NewGate as NewGate
from runkon.persistence._records import NewRun as NewRun
from runkon.persistence._records import NewStep as NewStep
from runkon.persistence._records import Notification as Notification
from runkon.persistence._records import NotificationKind as NotificationKind
from runkon.persistence._records import ReceiptOutcome as ReceiptOutcome
from runkon.persistence._records import RunRecord as RunRecord
from runkon.persistence._records import RunStatus as RunStatus
from runkon.persistence._records import StepRecord as StepRecord
from runkon.persistence._records import StepRole as StepRole
from runkon.persistence._records import StepStatus as StepStatus
from runkon.persistence._records import StepUpdate as StepUpdate
from runkon.persistence._records import WaitingGate as WaitingGate
from runkon.persistence._records import attempts_by_step as attempts_by_step
from runkon.persistence._rules import CANCELLATION_REQUESTED as CANCELLATION_REQUESTED
from runkon.persistence._rules import GATE_APPROVAL_RECORDED as GATE_APPROVAL_RECORDED
from runkon.persistence._rules import GATE_RESOLVED as GATE_RESOLVED
from runkon.persistence._rules import GATE_TIMED_OUT as GATE_TIMED_OUT
from runkon.persistence._schema import CANONICAL_SCHEMA_DDL as CANONICAL_SCHEMA_DDL
from runkon.persistence._schema import MIGRATIONS as MIGRATIONS
from runkon.persistence._schema import Migration as Migration
from runkon.persistence._sqlite import SqliteStore as SqliteStore

__all__ = (
    "ACTIVE_RUN_STATUSES",
    "CANCELLATION_REQUESTED",
    "CANONICAL_SCHEMA_DDL",
    "GATE_APPROVAL_RECORDED",
    "GATE_RESOLVED",
    "GATE_TIMED_OUT",
    "MEMO_PREFIX",
    "MIGRATIONS",
    "TERMINAL_RUN_STATUSES",
    "TERMINAL_STEP_STATUSES",
    "CapturedOutput",
    "EventListener",
    "EventRecord",
    "FanOutItemRecord",
    "FanOutItemStatus",
    "FanOutItemUpdate",
    "GateApproval",
    "GateDecision",
    "GateOption",
    "GateReceipt",
    "GateRecord",
    "InMemoryStore",
    "Migration",
    "NewEvent",
    "NewFanOutItem",
    "NewGate",
    "NewRun",
    "NewStep",
    "Notification",
    "NotificationKind",
    "NotificationStream",
    "ReceiptOutcome",
    "RunRecord",
    "RunStatus",
    "SqliteStore",
    "StepRecord",
    "StepRole",
    "StepStatus",
    "StepUpdate",
    "Store",
    "WaitingGate",
    "attempts_by_step",
)
