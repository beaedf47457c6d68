"""Service errors as Python exceptions: each carries the gRPC status code and the service's message."""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc


class EmbedCacheError(Exception):
    """A call to the service failed. ``code`` is the gRPC status, ``message`` the service's own words."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, code: grpc.StatusCode, message: str, method: Optional[str] = None):
        self.code = code
        self.message = message
        self.method = method
        where = f" ({method})" if method else ""
        super().__init__(f"{code.name}{where}: {message}")

    @property
    def status(self) -> str:
        """The status name, e.g. ``"NOT_FOUND"``."""
        return self.code.name


class InvalidArgument(EmbedCacheError, ValueError):
    """INVALID_ARGUMENT: the request is malformed; the message names the field."""


class NotFound(EmbedCacheError, LookupError):
    """NOT_FOUND: unknown encoder, dataset or job."""


class OutOfRange(EmbedCacheError, IndexError):
    """OUT_OF_RANGE: a positional index or start_offset past the end of a cached split; the message names its size."""


class FailedPrecondition(EmbedCacheError):
    """FAILED_PRECONDITION: e.g. the split is not cached yet (prewarm it, or stream with fill_missing)."""


class ResourceExhausted(EmbedCacheError):
    """RESOURCE_EXHAUSTED: a limit of the service (keys per request, feature bytes, streams per caller)."""


class Unauthenticated(EmbedCacheError, PermissionError):
    """UNAUTHENTICATED: no API key, or an unknown one."""


class PermissionDenied(EmbedCacheError, PermissionError):
    """PERMISSION_DENIED: a trainer key on the admin API."""


class Unavailable(EmbedCacheError, ConnectionError):
    """UNAVAILABLE: the service is unreachable or shutting down (retried before this is raised)."""


class DeadlineExceeded(EmbedCacheError, TimeoutError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""


class Cancelled(EmbedCacheError):
    """CANCELLED: the call was cancelled."""


class DataLoss(EmbedCacheError):
    """DATA_LOSS: a stored value failed its checksum."""


class Internal(EmbedCacheError):
    """INTERNAL: an unexpected error; the message holds an id to find in the service log."""


class JobFailed(EmbedCacheError):
    """A prewarm job ended FAILED or CANCELLED; ``progress`` is its last report."""

    def __init__(self, progress):
        self.progress = progress
        super().__init__(grpc.StatusCode.ABORTED, f"job {progress.job_id} {progress.state}: {progress.message}")


_BY_CODE: Dict[grpc.StatusCode, Type[EmbedCacheError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.INTERNAL: Internal,
}


def from_rpc_error(error: grpc.RpcError, method: Optional[str] = None) -> EmbedCacheError:
    """The exception for a failed call: its class follows the status code."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or str(error)
    return _BY_CODE.get(code, EmbedCacheError)(code, message, method)
