"""runkon.events — the event vocabulary (``EventType``), typed engine events (a pydantic
discriminated union), the event bus that fans them out to subscribers and sinks, and
ready-made sinks. Imports nothing else of runkon."""

from runkon.events._bus import EventBus as EventBus
from runkon.events._bus import EventSink as EventSink
from runkon.events._bus import Subscription as Subscription
from runkon.events._models import ENGINE_EVENT_ADAPTER as ENGINE_EVENT_ADAPTER
from runkon.events._models import EVENT_TYPES as EVENT_TYPES
from runkon.events._models import CancellationRequested as CancellationRequested
from runkon.events._models import EngineEvent as EngineEvent
from runkon.events._models import EventsDropped as EventsDropped
from runkon.events._models import FanOutItemCompleted as FanOutItemCompleted
from runkon.events._models import FanOutItemsCollected as FanOutItemsCollected
from runkon.events._models import FanOutItemStarted as FanOutItemStarted
from runkon.events._models import GateApprovalRecorded as GateApprovalRecorded
from runkon.events._models import GateResolved as GateResolved
from runkon.events._models import GateTimedOut as GateTimedOut
from runkon.events._models import GateWaiting as GateWaiting
from runkon.events._models import LeaseLost as LeaseLost
from runkon.events._models import MetricsUpdated as MetricsUpdated
from runkon.events._models import RunCancelled as RunCancelled
from runkon.events._models import RunCompleted as RunCompleted
from runkon.events._models import RunFailed as RunFailed
from runkon.events._models import RunResumed as RunResumed
from runkon.events._models import RunStarted as RunStarted
from runkon.events._models import StepCompleted as StepCompleted
from runkon.events._models import StepFailed as StepFailed
from runkon.events._models import StepRetrying as StepRetrying
from runkon.events._models import StepSkipped as StepSkipped
from runkon.events._models import StepStarted as StepStarted
from runkon.events._models import event_from_record as event_from_record
from runkon.events._models import event_payload as event_payload
from runkon.events._sinks import CallbackSink as CallbackSink
from runkon.events._sinks import StructlogSink as StructlogSink
from runkon.events._types import FINAL_EVENT_TYPES as FINAL_EVENT_TYPES
from runkon.events._types import EventType as EventType

__all__ = (
    "ENGINE_EVENT_ADAPTER",
    "EVENT_TYPES",
    "FINAL_EVENT_TYPES",
    "CallbackSink",
    "CancellationRequested",
    "EngineEvent",
    "EventBus",
    "EventSink",
    "EventType",
    "EventsDropped",
    "FanOutItemCompleted",
    "FanOutItemStarted",
    "FanOutItemsCollected",
    "GateApprovalRecorded",
    "GateResolved",
    "GateTimedOut",
    "GateWaiting",
    "LeaseLost",
    "MetricsUpdated",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunResumed",
    "RunStarted",
    "StepCompleted",
    "StepFailed",
    "StepRetrying",
    "StepSkipped",
    "StepStarted",
    "StructlogSink",
    "Subscription",
    "event_from_record",
    "event_payload",
)
