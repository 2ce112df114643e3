"""Registry-specific error kinds, subclasses of the one taxonomy in `dockyard.errors`.

`DigestMismatch` is an InvalidArgument (the content is not what its digest says);
`RegistryUnavailable` is a FailedPrecondition (the registry could not be reached or spoke
garbage); authentication failures are `dockyard.errors.Unauthorized`.
"""

from __future__ import annotations

from ..errors import (DockyardError, FailedPrecondition, InvalidArgument, NotFound, Unauthorized,
                      Unsupported)

__all__ = ["DigestMismatch", "RegistryUnavailable", "Unauthorized", "describe", "error_for_status"]


class DigestMismatch(InvalidArgument):
    """Content read from a registry does not hash to the digest it was asked for."""

    def __init__(self, message: str, digest: str = "") -> None:
        super().__init__(message)
        self.digest = digest


class RegistryUnavailable(FailedPrecondition):
    """Connection refused / reset, TLS failure, or repeated 5xx answers."""


def _first_error(body: bytes) -> tuple[str, str]:
    """(CODE, message) of a distribution error document, or ("", text)."""
    import json  # here: only for a failed answer

    try:
        doc = json.loads(body)
    except ValueError:
        return "", body.decode(errors="replace").strip().splitlines()[0][:200] if body.strip() else ""
    if isinstance(doc, dict):
        errs = doc.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return str(errs[0].get("code") or ""), str(errs[0].get("message") or "")
    return "", ""


def describe(status: int, body: bytes) -> str:
    """`manifest unknown: manifest unknown`: the error code's gist and its message."""
    code, message = _first_error(body)
    gist = code.lower().replace("_", " ")
    if status in (401, 403) and not code:
        return "unauthorized: authentication required"
    return f"{gist}: {message}" if gist and message else (gist or message or f"status {status}")


def error_for_status(status: int, body: bytes, what: str, name: str) -> DockyardError:
    """Map a failed registry answer to one of the taxonomy's kinds, Docker's wording kept:
    `manifest for NAME:TAG not found: manifest unknown: manifest unknown`."""
    code, message = _first_error(body)
    cause = describe(status, body)
    if code == "NAME_UNKNOWN":
        return NotFound(f"repository {name} not found: {cause}")
    if status == 404 or code in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"):
        return NotFound(f"{what} not found: {cause}")
    if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
        return Unauthorized(f"{what}: {cause}")
    if status == 429 or code == "TOOMANYREQUESTS":
        return FailedPrecondition(f"{what}: toomanyrequests: {message or 'too many requests'}")
    if status == 405 or code == "UNSUPPORTED":
        return Unsupported(f"{what}: {cause} (the registry does not allow this operation)")
    if status >= 500:
        return RegistryUnavailable(f"{what}: the registry answered {status}: {cause}")
    return InvalidArgument(f"{what}: {cause}")
