"""The one error taxonomy. Every user-facing failure is one of these kinds.

Each error carries a complete one-line message naming the object and the cause.
The CLI maps kinds to exit codes; the API server (later) maps them to HTTP statuses.
"""

from __future__ import annotations


class Kind:
    """Error kinds (plain string constants: `enum` costs every command ~1 ms to import)."""

    NOT_FOUND = "not found"
    ALREADY_EXISTS = "already exists"
    INVALID_ARGUMENT = "invalid argument"
    CONFLICT = "conflict"
    FAILED_PRECONDITION = "failed precondition"
    NOT_MODIFIED = "not modified"
    UNSUPPORTED = "unsupported"
    INTERNAL = "internal"


class DockyardError(Exception):
    """Base class: `str(err)` is the one-line message shown to the user."""

    kind = Kind.INTERNAL
    #: exit code used by the CLI (Docker uses 125 for engine errors)
    exit_code = 125

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(DockyardError):
    kind = Kind.NOT_FOUND


class AlreadyExists(DockyardError):
    kind = Kind.ALREADY_EXISTS


class InvalidArgument(DockyardError):
    kind = Kind.INVALID_ARGUMENT


class Conflict(DockyardError):
    kind = Kind.CONFLICT


class FailedPrecondition(DockyardError):
    kind = Kind.FAILED_PRECONDITION


class NotModified(DockyardError):
    kind = Kind.NOT_MODIFIED


class Unsupported(DockyardError):
    kind = Kind.UNSUPPORTED


class Unauthorized(FailedPrecondition):
    """A registry refused the credentials (or asked for some): `unauthorized: …`."""


class ExecFailed(DockyardError):
    """The container's command could not be executed (Docker: 126 / 127)."""

    kind = Kind.FAILED_PRECONDITION

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
