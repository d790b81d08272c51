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


class Conflict(ServiceError):
    """A stale write (the record changed since it was read) or a duplicate."""

    status = 409


class Throttled(ServiceError):
    status = 429


class Unavailable(ServiceError):
    """The service cannot answer until an operator acts (the message says how)."""

    status = 503
