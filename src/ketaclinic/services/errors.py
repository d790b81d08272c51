"""Domain errors that the shells map to HTTP status codes and CLI exit codes."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``str(exc)`` is a message safe to show the user (no patient data)."""

    status = 400


class InvalidInput(ServiceError):
    status = 422


class NotFound(ServiceError):
    status = 404


class PermissionDenied(ServiceError):
    status = 403


class NotAuthenticated(ServiceError):
    status = 401
    # Which message the login page shows after a redirect (a code in web/messages.py).
    login_message = "login"


class Conflict(ServiceError):
    """A stale write (the record changed since it was read) or a duplicate."""

    status = 409


class Throttled(ServiceError):
    """Too many attempts; ``retry_after_s`` says when to try again (the Retry-After header)."""

    status = 429

    def __init__(self, message: str, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


class Unavailable(ServiceError):
    """The service cannot answer until an operator acts (the message says how)."""

    status = 503
