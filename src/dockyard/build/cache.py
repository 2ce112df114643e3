"""The build cache: step key → image ID, on disk, with enough history to say why a step
missed.

Layout (under ``<data root>/build/cache/``)::

    steps/<key>.json          {"image": ..., "parent": ..., "step": StepInputs}
    children/<parent>.json    {"<key>": StepInputs, ...}: what was built on that parent
    bases.json                {"<FROM reference>": "<image id it resolved to>"}

The key is sha256 over the parent image ID, the instruction as it is recorded in the
history (expanded, with the build args in effect), the COPY/ADD source digest and the
SOURCE_DATE_EPOCH; `StepInputs` keep the parts apart so a miss can be explained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from .._path import Path

from .._record import asdict, dataclass, field
from .._util import atomic_write, locked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: per parent, the number of child entries kept for explanations
_MAX_CHILDREN = 64
#: per step, the number of source paths kept for explanations
_MAX_FILES = 4096
#: step entries kept (the newest); older ones are pruned now and then
MAX_STEPS = 20000


@dataclass(frozen=True)
class StepInputs:
    instruction: str                 # the Dockerfile text of the step ("COPY a.txt /a.txt")
    created_by: str                  # the history form, with expanded args
    args: dict[str, str] = field(default_factory=dict)   # build args in scope -> value
    files: dict[str, str] = field(default_factory=dict)  # COPY/ADD: path -> "kind mode sha"
    digest: str = ""                 # COPY/ADD: all sources
    extra: str = ""                  # anything else in the key (network, epoch)

    def key(self, parent: str) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([parent, self.created_by, self.digest, self.extra]).encode())
        return h.hexdigest()


def _hex(image_id: str | None) -> str:
    if not image_id:
        return "scratch"
    return image_id.split(":", 1)[-1]


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.steps = root / "steps"
        self.children = root / "children"
        self.lock_path = root / ".lock"

    def lookup(self, parent: str | None, inputs: StepInputs) -> str | None:
        """The image ID cached for this step, if any."""
        try:
            with open(self.steps / f"{inputs.key(_hex(parent))}.json") as f:
                return str(json.load(f)["image"])
        except (OSError, ValueError, KeyError):
            return None

    def store(self, parent: str | None, inputs: StepInputs, image_id: str) -> None:
        key = inputs.key(_hex(parent))
        small = inputs if len(inputs.files) <= _MAX_FILES else StepInputs(
            inputs.instruction, inputs.created_by, inputs.args, {}, inputs.digest, inputs.extra)
        doc = {"image": image_id, "parent": parent or "", "step": asdict(small)}
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.lock_path):
            atomic_write(self.steps / f"{key}.json", json.dumps(doc), durable=False)
            path = self.children / f"{_hex(parent)}.json"
            kids = self._read(path)
            kids.pop(key, None)
            kids[key] = asdict(small)
            while len(kids) > _MAX_CHILDREN:
                kids.pop(next(iter(kids)))
            atomic_write(path, json.dumps(kids), durable=False)
        if key.startswith("00"):  # about one store in 256: keep the cache bounded
            self.prune(MAX_STEPS)

    def prune(self, keep: int) -> int:
        """Remove all but the `keep` most recently written step entries; return how many."""
        try:
            entries = [(e.stat().st_mtime, e.path) for e in os.scandir(self.steps) if e.name.endswith(".json")]
        except FileNotFoundError:
            return 0
        entries.sort(reverse=True)
        for _, path in entries[keep:]:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return max(0, len(entries) - keep)

    def forget(self, parent: str | None, inputs: StepInputs) -> None:
        """Drop an entry whose image is gone."""
        try:
            os.unlink(self.steps / f"{inputs.key(_hex(parent))}.json")
        except OSError:
            pass

    def siblings(self, parent: str | None) -> list[StepInputs]:
        """Earlier steps built on `parent`, most recent last."""
        out = []
        for doc in self._read(self.children / f"{_hex(parent)}.json").values():
            try:
                out.append(StepInputs(**doc))
            except TypeError:
                continue
        return out

    def base_changed(self, ref: str, image_id: str) -> str | None:
        """Record what `ref` resolved to; return the previous ID if it differs."""
        path = self.root / "bases.json"
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.lock_path):
            bases = self._read(path)
            before = bases.get(ref)
            if before != image_id:
                bases[ref] = image_id
                atomic_write(path, json.dumps(bases), durable=False)
        return str(before) if before and before != image_id else None

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            with open(path) as f:
                doc = json.load(f)
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}


def explain_miss(inputs: StepInputs, siblings: list[StepInputs], build_args: set[str],
                 parent_rebuilt: bool) -> str:
    """Why `inputs` found no cache entry on its parent, in one line."""
    cmd = inputs.instruction.split(None, 1)[0].upper() if inputs.instruction else "STEP"
    if parent_rebuilt:
        return "previous step was rebuilt"
    same = [s for s in siblings if s.instruction == inputs.instruction]
    if not same:
        if not siblings:
            return "not built before on this parent"
        like = [s for s in siblings if s.instruction.split(None, 1)[:1] == [cmd]]
        if like:
            was = " ".join(like[-1].instruction.split())
            was = was if len(was) <= 60 else was[:57] + "..."
            return f"{cmd}: instruction changed (was: {was})"
        return f"{cmd}: instruction changed"
    prev = same[-1]
    for name in sorted(set(prev.args) | set(inputs.args)):
        if prev.args.get(name) != inputs.args.get(name):
            what = f"--build-arg {name}" if name in build_args else f"ARG {name}"
            return f"{cmd}: {what} changed"
    if prev.files != inputs.files or prev.digest != inputs.digest:
        label = " ".join(inputs.instruction.split()[1:-1]) or cmd
        label = f"{cmd} {label}" if not label.startswith(cmd) else label
        notes = []
        for path in sorted(set(prev.files) | set(inputs.files)):
            a, b = prev.files.get(path), inputs.files.get(path)
            if a == b:
                continue
            if a is None:
                notes.append(f"{path} added")
            elif b is None:
                notes.append(f"{path} removed")
            elif _content(a) != _content(b):
                notes.append(f"{path} content changed")
            else:
                notes.append(f"{path} metadata changed")
        if not notes:
            notes.append("sources changed")
        more = f" (and {len(notes) - 3} more)" if len(notes) > 3 else ""
        return f"{label}: {', '.join(notes[:3])}{more}"
    if prev.created_by != inputs.created_by:
        return f"{cmd}: expanded instruction changed"
    if prev.extra != inputs.extra:
        return f"{cmd}: {_extra_change(prev.extra, inputs.extra)}"
    return f"{cmd}: cached image was removed"


def _content(described: str) -> tuple[str, str]:
    """("kind", "sha or link target") of a "kind mode rest" description."""
    parts = described.split(" ", 2) + ["", ""]
    return parts[0], parts[2]


def _extra_change(before: str, after: str) -> str:
    """What changed between two `StepInputs.extra` strings ("k=v|k=v")."""
    a = dict(p.partition("=")[::2] for p in before.split("|"))
    b = dict(p.partition("=")[::2] for p in after.split("|"))
    if a.get("mounts") != b.get("mounts"):
        ma, mb = (a.get("mounts") or "").split(";"), (b.get("mounts") or "").split(";")
        opts = [m.split(":content=")[0].split(":image=")[0] for m in ma]
        if opts == [m.split(":content=")[0].split(":image=")[0] for m in mb]:
            return "--mount source content changed"
        return "--mount options changed"
    if a.get("checksum") != b.get("checksum"):
        return "--checksum changed"
    return "build options changed"
