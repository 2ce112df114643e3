"""Run a parsed Dockerfile against a `Backend`: stages, ARG scoping, the cache, and the
image config/history bookkeeping of Docker's classic builder.

Every step after FROM makes an intermediate image (as the classic builder does): its
config is the parent's plus the step's effect, one history entry (``empty_layer`` for
metadata-only steps) and, for RUN/COPY/ADD/WORKDIR that changed files, one more diff_id.
Intermediate images record their parent, so `images` hides them and `rmi` of the final
image prunes them; the cache maps a step key to such an image.
"""

from __future__ import annotations

import copy
import time

import dockerfile as _bk

from .._record import dataclass, field
from ..errors import DockyardError, FailedPrecondition, InvalidArgument, NotFound
from ..images.config import container_config, host_architecture, host_variant
from . import copystep, runmount, steps
from .backend import Backend, BaseImage, CopyEntry, CopyRequest, EntryKind, RunRequest
from .args import BUILTIN_ARGS, arg_pairs as _arg_pairs, heredoc_script, platform_args
from .cache import BuildCache, StepInputs, explain_miss
from .context import SourceRoot
from .parser import Dockerfile, Instruction, Stage, instruction_of
from ..images.shellwords import process_word
from .state import StageState as _State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

class BuildFailed(FailedPrecondition):
    """A step failed; the message names the step and the cause. `code` is a failed RUN's
    exit code (Docker's errorDetail.code, which `docker build` exits with), else 0."""

    code = 0


@dataclass(frozen=True)
class BuildOptions:
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "default"
    source_date_epoch: int | None = None
    quiet: bool = False
    secrets: dict[str, str] = field(default_factory=dict)  # --secret id -> host file
    ssh: dict[str, str] = field(default_factory=dict)  # --ssh id -> agent socket
    cache_from: tuple[str, ...] = ()  # images whose steps may answer this build's (cachefrom.py)


class Builder:
    def __init__(self, backend: Backend, cache: BuildCache | None, context: SourceRoot,
                 opts: BuildOptions, log: Callable[[str], None], output: Callable[[bytes], None]) -> None:
        self.backend = backend
        self.cache = cache
        self.context = context
        self.opts = opts
        self.log = log
        self.output = output
        self.stage_images: dict[int, BaseImage | None] = {}
        self.declared: set[str] = set()
        self.meta: dict[str, str | None] = {}
        self.step = 0
        self.total = 0
        self.escape = "\\"
        self.df: Dockerfile | None = None
        # for `memo`: the (step key, image) of every step, whether all were cache hits,
        # and whether a remote source (URL, Git) was read
        self.trace: list[tuple[str, str]] = []
        self.all_cached = cache is not None and not opts.no_cache
        self.remote = False
        self._sources: list[BaseImage] | None = None  # --cache-from images, resolved on first use

    # ---- driver --------------------------------------------------------------------

    def build(self, df: Dockerfile) -> str:
        """Build the target stage; return the final image ID."""
        self.df = df
        self.escape = df.escape
        self._meta_args(df)
        if self.opts.target:
            idx = df.stage_index(self.opts.target)
            if idx is None:
                raise InvalidArgument(f"failed to reach build target {self.opts.target} in Dockerfile")
        else:
            idx = len(df.stages) - 1
        needed = self._needed(df, idx)
        self.total = sum(1 + len(df.stages[i].instructions) for i in needed) + (1 if self.opts.labels else 0)
        final: BaseImage | None = None
        for i in sorted(needed):
            final = self._run_stage(df.stages[i], extra_labels=i == idx)
            self.stage_images[i] = final
        unused = sorted(set(self.opts.build_args) - self.declared - BUILTIN_ARGS)
        if unused:
            self.log(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        if final is None:
            raise BuildFailed("No image was generated. Is your Dockerfile empty?")
        return final.id

    def _meta_args(self, df: Dockerfile) -> None:
        self.meta.update(platform_args())
        for ins in df.meta_args:
            for k, default in _arg_pairs(ins):
                self.declared.add(k)
                env = {a: v for a, v in self.meta.items() if v is not None}
                if k in self.opts.build_args:
                    self.meta[k] = self.opts.build_args[k]
                elif default is not None:
                    self.meta[k] = process_word(default, env, self.escape)
                else:
                    self.meta[k] = None

    def _from_name(self, st: Stage) -> str:
        env = {k: v for k, v in self.meta.items() if v is not None}
        name = process_word(st.base, env, self.escape)
        if not name:
            raise InvalidArgument(f"Dockerfile line {st.from_instr.line}: base name ({st.base}) should not be blank")
        return name

    def _needed(self, df: Dockerfile, target: int) -> set[int]:
        """The target stage and the stages it uses (FROM <stage>, COPY --from=<stage>)."""
        env = {k: v for k, v in self.meta.items() if v is not None}
        need: set[int] = set()
        todo = [target]
        while todo:
            i = todo.pop()
            if i in need:
                continue
            need.add(i)
            st = df.stages[i]
            refs = [self._from_name(st)]
            for ins in st.instructions:
                src = ins.flag("from")
                if ins.cmd == "COPY" and src:
                    refs.append(process_word(src, env, self.escape))
                if ins.cmd == "RUN":
                    refs += runmount.mount_froms(ins, env, self.escape)
            for ref in refs:
                j = df.stage_index(ref)
                if j is not None and j < i:
                    todo.append(j)
        return need

    # ---- stages ------------------------------------------------------------------

    def _announce(self, text: str) -> None:
        self.step += 1
        self.log(f"Step {self.step}/{self.total} : {text}")

    def _run_stage(self, st: Stage, extra_labels: bool) -> BaseImage | None:
        self._announce(st.from_instr.text)
        name = self._from_name(st)
        assert self.df is not None
        j = self.df.stage_index(name)
        base: BaseImage | None
        if j is not None and j < st.index and name.lower() == (self.df.stages[j].name or str(j)):
            base = self.stage_images.get(j)
        elif name == "scratch":
            base = None
        else:
            try:
                base = self.backend.base(name)
            except NotFound:
                raise BuildFailed(f"Step {self.step}/{self.total} : {st.from_instr.text}: pull access denied or "
                                  f"image not found locally: {name} (no registry access)") from None
        state = _State(base, self._base_doc(base))
        if base is not None:
            self.log(f" ---> {_short(base.id)}")
            if self.cache is not None and j is None:
                before = self.cache.base_changed(name, base.id)
                if before:
                    state.base_changed = f"FROM {name}: base image changed (was {_short(before)})"
        cfg = state.config
        if not any(e.startswith("PATH=") for e in cfg.get("Env") or []):
            cfg["Env"] = [steps.DEFAULT_PATH, *(cfg.get("Env") or [])]
            state.doc["config"] = cfg
        triggers = list(cfg.get("OnBuild") or [])
        if triggers:
            cfg["OnBuild"] = None
            state.doc["config"] = cfg
            self.log(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for trig in triggers:
                cmds = _bk.parse_string(trig)
                if len(cmds) != 1:
                    raise BuildFailed("onbuild trigger should be a single expression")
                self._dispatch(state, instruction_of(cmds[0]), announce=False)
        for ins in st.instructions:
            self._dispatch(state, ins)
        if extra_labels and self.opts.labels:
            self._label_step(state)
        return state.image

    def _base_doc(self, base: BaseImage | None) -> dict[str, Any]:
        if base is not None:
            doc = copy.deepcopy(base.config)
            for k in ("container", "container_config", "docker_version", "id", "parent", "comment", "author"):
                doc.pop(k, None)
            doc["config"] = dict(doc.get("config") or {})
            return doc
        doc = {"architecture": host_architecture(), "config": {}, "os": "linux",
               "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
        if host_variant():
            doc["variant"] = host_variant()
        return doc

    # ---- steps -------------------------------------------------------------------

    def _dispatch(self, state: _State, ins: Instruction, announce: bool = True) -> None:
        if announce:
            self._announce(ins.text)
        step = f"Step {self.step}/{self.total} : {ins.text}"
        try:
            if ins.cmd == "ARG":
                self._arg(state, ins)
            elif ins.cmd == "RUN":
                self._run(state, ins, step)
            elif ins.cmd in ("COPY", "ADD"):
                copystep.copy(self, state, ins)
            elif ins.cmd == "WORKDIR":
                self._workdir(state, ins)
            elif ins.cmd == "FROM":
                raise InvalidArgument("FROM is not allowed here")
            else:
                effect = steps.apply(ins, state.config, state.expand_env(), self.escape, state.cmd_set)
                inputs = self._inputs(state, ins, effect.created_by)
                self._commit(state, inputs, effect.config, None, author=effect.author)
                state.cmd_set = effect.cmd_set
        except BuildFailed:
            raise
        except DockyardError as e:
            raise BuildFailed(f"{step}: {e}") from None
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            raise BuildFailed(f"{step}: {e.strerror or e}{where}") from None

    def _inputs(self, state: _State, ins: Instruction, created_by: str, files: dict[str, str] | None = None,
                digest: str = "", extra: str = "") -> StepInputs:
        epoch = self.opts.source_date_epoch
        return StepInputs(ins.text, created_by, dict(state.scoped_args()), files or {}, digest,
                          f"{extra}|epoch={epoch if epoch is not None else ''}")

    def _arg(self, state: _State, ins: Instruction) -> None:
        parts = []
        for k, default in _arg_pairs(ins):
            self.declared.add(k)
            env = state.expand_env()
            if default is not None:
                default = process_word(default, env, self.escape)
            if k in self.opts.build_args:
                value: str | None = self.opts.build_args[k]
            elif default is not None:
                value = default
            else:
                value = self.meta.get(k)
            state.args[k] = value
            parts.append(k if default is None else f"{k}={default}")
        created_by = steps.nop(state.config, "ARG " + " ".join(parts))
        self._commit(state, self._inputs(state, ins, created_by), state.config, None)

    def _run(self, state: _State, ins: Instruction, step: str) -> None:
        if ins.flag("security"):
            raise InvalidArgument("RUN --security is not supported by this builder")
        mounts = runmount.parse_all(self, state, ins, state.config.get("WorkingDir") or "/")
        flag = ins.flag("network")
        if flag and flag not in ("default", "host", "none"):
            raise InvalidArgument(f"unsupported network mode for RUN: {flag}")
        network = flag or self.opts.network  # the classic builder's --network may name a user network
        cfg = state.config
        if ins.heredocs and not ins.json and " ".join(ins.args).strip().startswith("<<") \
                and len(ins.heredocs) == 1:
            argv = [*steps.shell_of(cfg), heredoc_script(ins.heredocs[0].content)]
        elif ins.heredocs and not ins.json:
            argv = [*steps.shell_of(cfg), ins.original.split(None, 1)[1]]
        else:
            argv = steps.command_line(ins, cfg)
        scoped = state.scoped_args()
        recorded = sorted(f"{k}={v}" for k, v in scoped.items())
        save = ([f"|{len(recorded)}", *recorded] if recorded else []) + argv
        created_by = " ".join(save)
        env = list(cfg.get("Env") or [])
        keys = state.env_keys()
        env += [f"{k}={v}" for k, v in sorted(scoped.items())]
        env += [f"{k}={v}" for k, v in sorted(self.opts.build_args.items())
                if k in BUILTIN_ARGS and k not in keys and k not in scoped]
        agent = runmount.ssh_auth_sock(self, mounts)
        if agent and "SSH_AUTH_SOCK" not in keys and "SSH_AUTH_SOCK" not in scoped:
            env.append(f"SSH_AUTH_SOCK={agent}")
        mount_key = f"|mounts={runmount.cache_key(self, state, mounts)}" if mounts else ""
        inputs = self._inputs(state, ins, created_by, extra=f"network={network}{mount_key}")
        parent = state.image
        if parent is None:
            raise InvalidArgument("cannot RUN in an empty image (FROM scratch): there is no shell")

        def action() -> str | None:
            started: list[str] = []

            def on_start(cid: str) -> None:
                started.append(cid)
                self.log(f" ---> Running in {cid[:12]}")

            with runmount.resolved(self, state, mounts) as resolved:
                req = RunRequest(tuple(argv), tuple(env), cfg.get("WorkingDir") or "/", cfg.get("User") or "",
                                 network, step, resolved)
                result = self.backend.run(parent, req, self.output, self.opts.source_date_epoch, on_start)
            if started:
                self.log(f"Removing intermediate container {started[0][:12]}")
            if result.exit_code != 0:
                failed = BuildFailed(f"{step}: The command '{' '.join(argv)}' returned a non-zero code: "
                                     f"{result.exit_code}")
                failed.code = result.exit_code
                raise failed
            return result.diff_id

        self._commit(state, inputs, cfg, action)

    def _workdir(self, state: _State, ins: Instruction) -> None:
        effect = steps.apply(ins, state.config, state.expand_env(), self.escape, state.cmd_set)
        path = effect.config["WorkingDir"]
        parent = state.image
        inputs = self._inputs(state, ins, effect.created_by)
        req = CopyRequest((CopyEntry(EntryKind.DIR, path, mode=None),))

        def action() -> str | None:
            return self.backend.copy(parent, req, self.opts.source_date_epoch).diff_id

        self._commit(state, inputs, effect.config, action)

    def _label_step(self, state: _State) -> None:
        labels = self.opts.labels
        text = "LABEL " + " ".join(f"{k}={v}" for k, v in labels.items())
        self._announce(text)
        cfg = state.config
        merged = dict(cfg.get("Labels") or {})
        merged.update(labels)
        cfg["Labels"] = merged
        ins = Instruction("LABEL", (), (), False, text, 0)
        self._commit(state, self._inputs(state, ins, steps.nop(cfg, text)), cfg, None)

    # ---- commit & cache ------------------------------------------------------------

    def _commit(self, state: _State, inputs: StepInputs, config: dict[str, Any],
                action: Callable[[], str | None] | None, author: str | None = None) -> None:
        parent_id = state.image.id if state.image else None
        if self.cache is not None and not self.opts.no_cache:
            hit = self.cache.lookup(parent_id, inputs)
            if hit and self.backend.image_exists(hit):
                state.image = self.backend.get_image(hit)
                state.doc = copy.deepcopy(state.image.config)
                self.log(" ---> Using cache")
                self.log(" ---> CACHED")
                self.log(f" ---> {_short(hit)}")
                self.trace.append((inputs.key(parent_id.split(":", 1)[-1] if parent_id else "scratch"), hit))
                return
            if hit:
                self.cache.forget(parent_id, inputs)
            if self.opts.cache_from and self._restore(state, inputs, config):
                return
            if state.base_changed and not state.rebuilt:
                reason = state.base_changed
            else:
                reason = explain_miss(inputs, self.cache.siblings(parent_id), set(self.opts.build_args),
                                      state.rebuilt)
            self.log(f" ---> Cache miss: {reason}")
        state.rebuilt = True
        self.all_cached = False
        diff_id = action() if action is not None else None
        self._make_image(state, inputs, config, author, diff_id, None)

    def _restore(self, state: _State, inputs: StepInputs, config: dict[str, Any]) -> bool:
        """Answer the step from a --cache-from image (build/cachefrom.py), if one can."""
        from . import cachefrom

        if self._sources is None:
            self._sources = [img for img in map(self.backend.local_image, self.opts.cache_from) if img]
        found = cachefrom.find(self._sources, state.doc if state.image else None, inputs.created_by)
        if found is None:
            return False
        self._sources = [found.source]  # Docker keeps to the source that matched
        self.all_cached = False
        self.log(" ---> Using cache (from --cache-from)")
        if found.last:  # the step's image is the source itself
            if self.cache is not None:
                self.cache.store(state.image.id if state.image else None, inputs, found.source.id)
            state.image = found.source
            state.doc = copy.deepcopy(found.source.config)
            self.log(f" ---> {_short(found.source.id)}")
        else:
            self._make_image(state, inputs, config, None, found.layer, found.item)
        return True

    def _make_image(self, state: _State, inputs: StepInputs, config: dict[str, Any], author: str | None,
                    diff_id: str | None, restored: dict[str, Any] | None) -> None:
        """The step's image on the parent: a new history entry (or `restored`, a
        --cache-from image's) and the layer `diff_id`, if the step made one."""
        parent_id = state.image.id if state.image else None
        doc = copy.deepcopy(state.doc)
        created = restored["created"] if restored else self._created()
        doc["config"] = container_config(config)
        doc["config"]["Image"] = parent_id or ""
        doc["created"] = created
        if author is not None:
            doc["author"] = author
        if restored is not None:
            item = restored
        else:
            item = {"created": created}  # Docker's key order
            if author or doc.get("author"):
                item["author"] = doc.get("author")
            item["created_by"] = inputs.created_by
            if diff_id is None:
                item["empty_layer"] = True
        doc["history"] = [*(doc.get("history") or []), item]
        rootfs = dict(doc.get("rootfs") or {"type": "layers"})
        rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), *([diff_id] if diff_id else [])]
        doc["rootfs"] = rootfs
        doc = {k: doc[k] for k in sorted(doc)}
        image_id = self.backend.create_image(doc, parent_id)
        if self.cache is not None:
            self.cache.store(parent_id, inputs, image_id)
        state.image = self.backend.get_image(image_id)
        state.doc = doc
        self.log(f" ---> {_short(image_id)}")

    def _created(self) -> str:
        epoch = self.opts.source_date_epoch
        if epoch is not None:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
        from .._util import now_rfc3339

        return now_rfc3339()


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]
