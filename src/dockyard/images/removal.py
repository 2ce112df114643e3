"""`docker rmi` rules, as Docker's ImageDelete applies them.

- By tag or digest: the reference is removed; the image itself only goes when that was
  its last reference. A stopped or running container using an image blocks removing its
  only reference unless forced.
- By ID: all references go too when they are all in one repository (or forced); a
  stopped container blocks unless forced; a running one or a child image always blocks.
- After deleting an image its untagged, childless parent images are pruned quietly.
- Layers go when no remaining image or container layer uses them.

Called by `ImageStore.remove` under the store lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .._record import dataclass
from .._util import short_id
from ..errors import Conflict
from .refs import Reference, parse_reference

if TYPE_CHECKING:
    from .store import ImageStore

Records = list[tuple[str, str]]
ContainersUsing = Callable[[str], list[tuple[str, bool]]]

_CHILD = 1
_RUNNING = 2
_REFERENCED = 4
_STOPPED = 8
_HARD = _CHILD | _RUNNING
_SOFT = _REFERENCED | _STOPPED


@dataclass(frozen=True)
class _DeleteConflict:
    image_id: str
    hard: bool
    used: bool
    message: str

    def error(self) -> Conflict:
        how = "cannot be forced" if self.hard else "must be forced"
        return Conflict(
            f"conflict: unable to delete {short_id(self.image_id)} ({how}) - {self.message}"
        )


def _is_id_prefix(image_id: str, given: str) -> bool:
    return image_id.startswith(given) or image_id[7:].startswith(given)


def _is_single_reference(refs: list[Reference]) -> bool:
    """One tag (plus, perhaps, digests of that same repository), or one reference."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    digest_names: set[str] = set()
    for ref in refs:
        if ref.digest is not None:
            digest_names.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    if single is None:
        single = refs[0]
    return len(digest_names) == 1 and single.name in digest_names


def _check_conflict(store: ImageStore, image_id: str, mask: int,
                    containers_using: ContainersUsing) -> _DeleteConflict | None:
    if mask & _CHILD and store.children(image_id):
        return _DeleteConflict(image_id, True, False, "image has dependent child images")
    users = containers_using(image_id) if mask & (_RUNNING | _STOPPED) else []
    if mask & _RUNNING:
        running = [cid for cid, is_running in users if is_running]
        if running:
            return _DeleteConflict(
                image_id, True, True,
                f"image is being used by running container {short_id(running[0])}",
            )
    if mask & _REFERENCED and store.refs.references(image_id):
        return _DeleteConflict(
            image_id, False, False, "image is referenced in multiple repositories"
        )
    if mask & _STOPPED:
        stopped = [cid for cid, is_running in users if not is_running]
        if stopped:
            return _DeleteConflict(
                image_id, False, True,
                f"image is being used by stopped container {short_id(stopped[0])}",
            )
    return None


def remove_image(store: ImageStore, name_or_id: str, force: bool, prune: bool,
                 containers_using: ContainersUsing) -> Records:
    image = store.resolve(name_or_id)
    image_id = image.id
    records: Records = []
    refs = store.refs.references(image_id)
    quiet = False
    if not _is_id_prefix(image_id, name_or_id):
        if not force and _is_single_reference(refs):
            users = containers_using(image_id)
            if users:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name_or_id}" '
                    f"(must force) - container {short_id(users[0][0])} is using its "
                    f"referenced image {short_id(image_id)}"
                )
        parsed = parse_reference(name_or_id)
        store.refs.delete(parsed)
        records.append(("Untagged", parsed.familiar()))
        refs = store.refs.references(image_id)
        if parsed.digest is None and not any(
            r.digest is None and r.name == parsed.name for r in refs
        ):
            # The last tag of a repository takes its digest references with it.
            remaining = []
            for r in refs:
                if r.digest is not None and r.name == parsed.name:
                    store.refs.delete(r)
                    records.append(("Untagged", r.familiar()))
                else:
                    remaining.append(r)
            refs = remaining
        if refs:
            return records
        quiet = True
    elif _is_single_reference(refs):
        mask = _HARD if force else _HARD | (_SOFT & ~_REFERENCED)
        conflict = _check_conflict(store, image_id, mask, containers_using)
        if conflict is not None:
            raise conflict.error()
        for r in refs:
            store.refs.delete(r)
            records.append(("Untagged", r.familiar()))
    _delete(store, image_id, records, force, prune, quiet, containers_using)
    return records


def _delete(store: ImageStore, image_id: str, records: Records, force: bool, prune: bool,
            quiet: bool, containers_using: ContainersUsing) -> None:
    mask = _HARD if force else _HARD | _SOFT
    conflict = _check_conflict(store, image_id, mask, containers_using)
    if conflict is not None:
        dangling = not store.refs.references(image_id) and not store.children(image_id)
        if quiet and (not dangling or conflict.used):
            return
        raise conflict.error()
    image = store.get(image_id)
    for r in store.refs.references(image_id):
        store.refs.delete(r)
        records.append(("Untagged", r.familiar()))
    store.delete_image(image_id)
    records.append(("Deleted", image_id))
    if image.top_chain_id:
        records.extend(("Deleted", chain) for chain in store.release_unused(image.top_chain_id))
    if prune and image.parent and store.exists(image.parent):
        _delete(store, image.parent, records, False, True, True, containers_using)
