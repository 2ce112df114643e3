"""The reference store: ``image/overlay2/repositories.json``, tags and digests → image IDs.

Docker's format, keyed by familiar names::

    {"Repositories": {"busybox": {"busybox:latest": "sha256:…",
                                  "busybox@sha256:…": "sha256:…"}}}

Every change is a read-modify-write of the whole file under the store lock, written
atomically, so concurrent processes never lose each other's tags.
"""

from __future__ import annotations


from .. import _json
from .._util import atomic_write, read_json
from ..errors import Conflict, InvalidArgument
from ..paths import Paths
from ._lock import store_lock
from .refs import Reference, parse_reference

Repos = dict[str, dict[str, str]]


class ReferenceStore:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.path = paths.repositories

    def _load(self) -> Repos:
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return {}
        repos = data.get("Repositories") if isinstance(data, dict) else None
        return repos if isinstance(repos, dict) else {}

    def _save(self, repos: Repos) -> None:
        text = _json.dumps({"Repositories": repos}, sort_keys=True)
        atomic_write(self.path, text, mode=0o600)

    def get(self, ref: Reference) -> str | None:
        """The image ID `ref` (tagged or digested) points to, if any."""
        ref = _stored_form(ref)
        return self._load().get(ref.familiar_name(), {}).get(ref.familiar())

    def references(self, image_id: str) -> list[Reference]:
        """All references to `image_id`, sorted by their familiar string."""
        out: list[str] = []
        for refs in self._load().values():
            out.extend(key for key, value in refs.items() if value == image_id)
        return [parse_reference(key, default_tag=False) for key in sorted(out)]

    def all(self) -> dict[str, str]:
        """Every familiar reference string → image ID."""
        out: dict[str, str] = {}
        for refs in self._load().values():
            out.update(refs)
        return out

    def add(self, ref: Reference, image_id: str, force: bool = True) -> None:
        """Point `ref` at `image_id` (a tag, or a name@digest)."""
        if ref.familiar_name() == "sha256":
            raise InvalidArgument(
                "refusing to create an ambiguous tag using digest algorithm as name"
            )
        ref = _stored_form(ref)
        if ref.is_name_only:
            raise InvalidArgument(f"reference {ref.familiar()} has no tag or digest")
        with store_lock(self.paths):
            repos = self._load()
            refs = repos.setdefault(ref.familiar_name(), {})
            key = ref.familiar()
            old = refs.get(key)
            if old is not None and old != image_id and not force:
                raise Conflict(
                    f"Conflict: Tag {key} is already set to image {old}, "
                    "if you want to replace it, please use the force option"
                )
            refs[key] = image_id
            self._save(repos)

    def delete(self, ref: Reference) -> bool:
        """Remove `ref`; False if it was not there."""
        ref = _stored_form(ref)
        with store_lock(self.paths):
            repos = self._load()
            name = ref.familiar_name()
            refs = repos.get(name)
            if not refs or ref.familiar() not in refs:
                return False
            del refs[ref.familiar()]
            if not refs:
                del repos[name]
            self._save(repos)
            return True


def _stored_form(ref: Reference) -> Reference:
    """``name:tag@digest`` is stored and looked up as ``name@digest`` (as Docker does)."""
    if ref.tag is not None and ref.digest is not None:
        return ref.with_digest(ref.digest)
    return ref
