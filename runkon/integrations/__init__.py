"""runkon.integrations: the HTTP surface (FastAPI router, aiohttp app, web inbox, server)
on top of the public API only. The framework-neutral parts live here; the framework
adapters are the submodules ``runkon.integrations.fastapi`` and
``runkon.integrations.aiohttp`` (each needs its extra installed)."""

from runkon.integrations._auth import Authorizer as Authorizer
from runkon.integrations._auth import Identity as Identity
from runkon.integrations._auth import Permission as Permission
from runkon.integrations._auth import Target as Target
from runkon.integrations._auth import TokenAuthorizer as TokenAuthorizer
from runkon.integrations._auth import allow_all as allow_all
from runkon.integrations._schemas import CancelOut as CancelOut
from runkon.integrations._schemas import CancelRequest as CancelRequest
from runkon.integrations._schemas import DecisionRequest as DecisionRequest
from runkon.integrations._schemas import ErrorOut as ErrorOut
from runkon.integrations._schemas import FeedbackRequest as FeedbackRequest
from runkon.integrations._schemas import GateOut as GateOut
from runkon.integrations._schemas import ReceiptOut as ReceiptOut
from runkon.integrations._schemas import RunDetailOut as RunDetailOut
from runkon.integrations._schemas import RunOut as RunOut
from runkon.integrations._schemas import StartedRunOut as StartedRunOut
from runkon.integrations._schemas import StartRunRequest as StartRunRequest
from runkon.integrations._schemas import StepLogsOut as StepLogsOut
from runkon.integrations._schemas import StepOut as StepOut
from runkon.integrations._service import ApiError as ApiError
from runkon.integrations._service import CheckedRun as CheckedRun
from runkon.integrations._service import RunkonApi as RunkonApi
from runkon.integrations._service import WorkflowCatalog as WorkflowCatalog
from runkon.integrations._service import sse_frame as sse_frame
from runkon.integrations._service import sse_stream as sse_stream

__all__ = (
    "ApiError",
    "Authorizer",
    "CancelOut",
    "CancelRequest",
    "CheckedRun",
    "DecisionRequest",
    "ErrorOut",
    "FeedbackRequest",
    "GateOut",
    "Identity",
    "Permission",
    "ReceiptOut",
    "RunDetailOut",
    "RunOut",
    "RunkonApi",
    "StartRunRequest",
    "StartedRunOut",
    "StepLogsOut",
    "StepOut",
    "Target",
    "TokenAuthorizer",
    "WorkflowCatalog",
    "allow_all",
    "sse_frame",
    "sse_stream",
)
