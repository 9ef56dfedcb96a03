"""Domain errors that map one-to-one onto gRPC status codes.

Library code raises these; the server guard (reelvec.server.ServiceGuard) turns them into the status, so
servicers never build statuses by hand and a bad input can never surface as UNKNOWN.
"""

import grpc


class ReelvecError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidInput(ReelvecError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ReelvecError):
    code = grpc.StatusCode.NOT_FOUND


class Precondition(ReelvecError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ReelvecError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ReelvecError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(ReelvecError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ReelvecError):
    code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(ReelvecError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
