"""The engine side of `dockyard build`: the `build.backend.Backend` over containers,
layers and images.

* RUN: a build container is created from the parent image (`lifecycle.create`, the same
  isolation as `dockyard run`, NetworkMode from --network), attached through the shim's
  socket so its output streams as it comes, started, waited for, and removed (always).
* RUN --mount: the resolved mounts go in as HostConfig.Mounts (binds and tmpfs, the path
  `run --mount` takes): cache dirs under ``<root>/build/mounts/<id>``, secrets as a 0400
  copy on the run root; mount points the parent image lacked are removed from the layer
  when left empty (BuildKit's stub cleaner).
* COPY/ADD/WORKDIR: a read-write layer (no container record: it is never started, and it
  works on `FROM scratch`) is mounted, the files are written into the merged dir with
  paths resolved inside the rootfs (`buildcopy`), then it is removed.
* Either way the upper dir becomes a layer the way `commit` does it: `write_diff_tar`
  (one diff/tar/digest path, here with the SOURCE_DATE_EPOCH clamp) and
  `LayerStore.register`; an empty diff adds no layer.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import socket
import stat
import tempfile
from .._path import Path

from .. import _util
from ..build.backend import BaseImage, CopyRequest, LayerResult, MountRequest, OutputSink, RunRequest
from ..errors import NotFound
from ..images._lock import store_lock
from ..images.store import EMPTY_DIFF_IDS
from ..images.tarfs import write_diff_tar
from ..runtime.rootfs import secure_join
from . import lifecycle, stream
from .buildcopy import write_entries
from .core import Engine
from .files import _without_bind_mounted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator


def _is_image_id(engine: Engine, ref: str) -> bool:
    """`ref` names an image by (a prefix of) its ID, which no registry can pull."""
    if ref.startswith("sha256:"):
        return True
    try:
        return engine.images.resolve(ref).id.split(":", 1)[-1].startswith(ref)
    except NotFound:
        return False


class EngineBackend:
    def __init__(self, engine: Engine, pull: bool = False) -> None:
        self.engine = engine
        #: `build --pull` / POST /build?pull=1: pull every image named by reference (FROM,
        #: COPY --from, RUN --mount from=) once per build before using it, as Docker does
        self.pull = pull
        self._pulled: set[str] = set()
        self.resolved: dict[str, str] = {}  # every image reference `base` resolved -> image ID
        self._unsynced = False  # step images written without fsync since the last `sync`

    # ---- images ------------------------------------------------------------------------

    def _base_of(self, image: Any) -> BaseImage:
        return BaseImage(image.id, image.config, image.top_chain_id)

    def base(self, ref: str) -> BaseImage:
        from ..errors import NotFound

        from .distmeta import NullProgress
        from .distribution import pull

        if self.pull and ref not in self._pulled and not _is_image_id(self.engine, ref):
            pull(self.engine, ref, None, False, NullProgress())
            self._pulled.add(ref)
        try:
            image = self.engine.images.resolve(ref)
        except NotFound:
            if ref.startswith("sha256:"):
                raise

            pull(self.engine, ref, None, False, NullProgress())  # FROM an image not here yet
            image = self.engine.images.resolve(ref)
        self.resolved[ref] = image.id
        return self._base_of(image)

    def get_image(self, image_id: str) -> BaseImage:
        """The image's ID, config and top chain ID, from its config alone (no size, no
        references: `ImageStore.get` would read every layer of the chain for those)."""
        import json

        from ..images.layers import chain_ids

        images = self.engine.images
        config = json.loads(images.raw_config(image_id))
        diff_ids = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
        return BaseImage("sha256:" + image_id.split(":", 1)[-1], config, chain_ids(diff_ids)[-1] if diff_ids else None)

    def image_exists(self, image_id: str) -> bool:
        return self.engine.images.exists(image_id)

    def local_image(self, ref: str) -> BaseImage | None:
        from ..errors import DockyardError

        try:
            return self.get_image(self.engine.images.resolve(ref).id)
        except (DockyardError, OSError, ValueError):
            return None  # Docker: a cache-from image that is not here is skipped

    def create_image(self, config: dict[str, Any], parent_id: str | None) -> str:
        """Store a step's image; not synced here (one `sync` when the build is done: an
        fsync per step cost more than the step itself on a busy disk)."""
        images = self.engine.images
        self._unsynced = True
        with store_lock(self.engine.paths):
            image_id = images.create_image(config, durable=False)
            if parent_id:
                images.set_parent(image_id, parent_id, durable=False)
        return image_id

    def sync(self) -> None:
        """Make what the build stored durable (before it is tagged); nothing to do when
        every step was a cache hit."""
        if not self._unsynced:
            return
        from ..images._mount import syncfs

        syncfs(self.engine.paths.root)
        self._unsynced = False

    def tag(self, image_id: str, ref: str) -> None:
        self.engine.images.tag(image_id, ref)

    # ---- layers ------------------------------------------------------------------------

    def _register(self, upper: Path, lowers: list[Path], parent_top: str | None,
                  mtime_clamp: int | None, merged: Path | None = None) -> str | None:
        """The layer of a step's upper dir (None if it changes nothing). The upper dir is
        moved into the store (`buildlayer.adopt_upper`) when it is not mounted and on the
        store's file system; otherwise its tar is written and registered, as `commit` does."""
        home = self.engine.layers.home
        if (merged is None or not os.path.ismount(merged)) and upper.stat().st_dev == home.stat().st_dev:
            from .buildlayer import adopt_upper

            return adopt_upper(self.engine.layers, upper, parent_top, mtime_clamp)
        tmp = self.engine.paths.tmp
        tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=tmp) as f:
            diff_id = write_diff_tar(upper, lowers, f, mtime_clamp=mtime_clamp)
            if diff_id in EMPTY_DIFF_IDS:
                return None
            f.seek(0)
            return self.engine.layers.register(f, parent_top).diff_id

    # ---- RUN ---------------------------------------------------------------------------

    def run(self, parent: BaseImage, req: RunRequest, output: OutputSink, mtime_clamp: int | None,
            on_start: Callable[[str], None]) -> LayerResult:
        config: dict[str, Any] = {
            "Image": parent.id, "Cmd": list(req.argv), "Entrypoint": [], "Env": list(req.env),
            "WorkingDir": req.workdir, "User": req.user, "AttachStdin": False,
            "AttachStdout": True, "AttachStderr": True, "Tty": False, "OpenStdin": False,
            "Labels": {"dockyard.build": "1"},
        }
        host_config: dict[str, Any] = {"NetworkMode": req.network,
                                       "LogConfig": {"Type": "json-file", "Config": {}}}
        with contextlib.ExitStack() as stack:
            stubs: _Stubs = ([], {})
            if req.mounts:
                host_config["Mounts"] = [self._mount_item(stack, m) for m in req.mounts]
                stubs = self._missing_targets(parent, [m.target for m in req.mounts])
            return self._run_container(parent, config, host_config, stubs, output, mtime_clamp, on_start)

    def _run_container(self, parent: BaseImage, config: dict[str, Any], host_config: dict[str, Any],
                       stubs: "_Stubs", output: OutputSink, mtime_clamp: int | None,
                       on_start: Callable[[str], None]) -> LayerResult:
        eng = self.engine
        from ..runtime.cgroups import warm

        warm.start()  # the step's init then joins its cgroup without an RCU grace period
        c = lifecycle.create(eng, config, host_config, None)
        try:
            on_start(c.id)
            holder: dict[str, socket.socket] = {}

            def before_start(run_dir: str) -> None:
                holder["sock"] = stream.connect(run_dir, stdin=False, stdout=True, stderr=True, cleanup=True)

            try:
                c = lifecycle.start(eng, c, before_start=before_start, volatile=True)
            except BaseException:
                if "sock" in holder:
                    holder["sock"].close()
                raise
            sock = holder["sock"]
            try:
                code = _pump(sock, output)
                final = lifecycle.wait_exit(eng, c, exited=code is not None)
            finally:
                stream.cleaned(sock)
            code = code if code is not None else final
            if code != 0:
                return LayerResult(None, code)
            p = eng.layers.rw_paths(c.id)
            _remove_stubs(p.upper, stubs)
            with _without_bind_mounted(eng, p.upper) as upper:
                diff_id = self._register(upper, list(p.lower_dirs), parent.top_chain_id, mtime_clamp, p.merged)
            return LayerResult(diff_id, 0)
        finally:
            self._remove_container(c.id)

    # ---- RUN --mount ---------------------------------------------------------------------

    def _mount_item(self, stack: contextlib.ExitStack, m: MountRequest) -> dict[str, Any]:
        """A HostConfig.Mounts item (the path `run --mount` takes) for one RUN mount."""
        if m.type == "tmpfs":
            item: dict[str, Any] = {"Type": "tmpfs", "Target": m.target}
            if m.size:
                item["TmpfsOptions"] = {"SizeBytes": m.size}
            return item
        if m.type == "ssh":
            from ..build.ssh import proxy

            base = str(self.engine.paths.runroot / "build-ssh")
            source = stack.enter_context(proxy(m.source, base, m.uid, m.gid, 0o600 if m.mode is None else m.mode))
            return {"Type": "bind", "Source": source, "Target": m.target, "ReadOnly": False}
        if m.type == "secret":
            source = self._secret_file(stack, m)
        elif m.type == "cache":
            source = self._cache_dir(stack, m)
        else:
            source = m.source
        return {"Type": "bind", "Source": source, "Target": m.target, "ReadOnly": m.read_only}

    def _secret_file(self, stack: contextlib.ExitStack, m: MountRequest) -> str:
        """A copy of the secret on the run root (tmpfs), with the mount's mode and owner."""
        base = self.engine.paths.runroot / "build-secrets"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=base))
        path = os.path.join(tmp, "secret")
        shutil.copyfile(m.source, path)
        os.chown(path, m.uid, m.gid)
        os.chmod(path, 0o400 if m.mode is None else m.mode)
        return path

    def _cache_dir(self, stack: contextlib.ExitStack, m: MountRequest) -> str:
        """``<root>/build/mounts/<id>``: made on first use (seeded from `m.source`), kept
        between builds; sharing=locked waits for other users, private gets a throw-away
        instance while the shared one is in use by a locked or private user."""
        import fcntl
        import urllib.parse

        base = self.engine.paths.root / "build" / "mounts"
        base.mkdir(parents=True, exist_ok=True)
        name = urllib.parse.quote(m.id, safe="") or "_"
        if name.startswith("."):  # never "..", nor a name of the lock and temp files here
            name = "%2E" + name[1:]
        path = base / name
        # shared users hold the lock shared, locked/private ones exclusively; `builder prune`
        # takes it exclusively, without waiting, so it never removes a mounted cache
        fd = os.open(str(base / f".{name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        stack.callback(os.close, fd)
        if m.sharing == "shared":
            fcntl.flock(fd, fcntl.LOCK_SH)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if m.sharing == "private" else 0))
            except BlockingIOError:  # private and in use: a new instance, for this step only
                path = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=base, prefix=".private-")))
                path = path / "cache"
        if not path.is_dir():
            tmp = base / f".tmp-{_util.new_id()[:16]}"
            try:
                if m.source and os.path.isdir(m.source):
                    shutil.copytree(m.source, tmp, symlinks=True)
                else:
                    tmp.mkdir()
                os.chown(tmp, m.uid, m.gid)
                os.chmod(tmp, 0o755 if m.mode is None else m.mode)
                os.rename(tmp, path)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not path.is_dir():
                    raise
        return str(path)

    def _missing_targets(self, parent: BaseImage, targets: list[str]) -> "_Stubs":
        """Paths (relative, resolved in the image) that mounting `targets` will create:
        removed again after the step when left empty, as BuildKit's mount stub cleaner;
        and the (mode, uid, gid) of their existing parents, whose copy-up is undone."""
        out: list[str] = []
        ancestors: dict[str, tuple[int, int, int]] = {}
        with self.rootfs(parent) as root:
            for t in targets:
                cur = "/"
                for part in [p for p in t.split("/") if p]:
                    cur = posixpath.join(cur, part)
                    host = secure_join(str(root), cur)
                    if not os.path.lexists(host):
                        rel = os.path.relpath(host, root)
                        up = os.path.dirname(rel)
                        while up and up not in ancestors:  # existing parents: to restore
                            st = os.lstat(os.path.join(root, up))
                            ancestors[up] = (st.st_mode, st.st_uid, st.st_gid)
                            up = os.path.dirname(up)
                        out.append(rel)
                        rest = t[len(cur):].strip("/")
                        out += [os.path.join(rel, *rest.split("/")[:i + 1]) for i in range(len(rest.split("/")))
                                if rest]
                        break
        return out, ancestors

    def _remove_container(self, cid: str) -> None:
        eng = self.engine
        try:
            lifecycle.remove(eng, eng.containers.load(cid), force=True)
        except NotFound:
            pass

    # ---- COPY / ADD / WORKDIR ------------------------------------------------------------

    @contextlib.contextmanager
    def _scratch_layer(self, top: str | None) -> Iterator[tuple[str, Path]]:
        lid = _util.new_id()
        layers = self.engine.layers
        layers.create_rw(lid, top, {})
        try:
            merged = layers.mount_rw(lid)
            try:
                yield lid, merged
            finally:
                layers.unmount_rw(lid)
        finally:
            layers.remove_rw(lid)

    @contextlib.contextmanager
    def rootfs(self, image: BaseImage) -> Iterator[Path]:
        with self._scratch_layer(image.top_chain_id) as (_lid, merged):
            yield merged

    def copy(self, parent: BaseImage | None, req: CopyRequest, mtime_clamp: int | None) -> LayerResult:
        top = parent.top_chain_id if parent else None
        with self._scratch_layer(top) as (lid, merged):
            owner = (0, 0)
            if req.chown:
                from .specgen import resolve_user

                uid, gid, _, _ = resolve_user(str(merged), req.chown)
                owner = (uid, gid)
            write_entries(merged, req, owner)
            self.engine.layers.unmount_rw(lid)
            p = self.engine.layers.rw_paths(lid)
            diff_id = self._register(p.upper, list(p.lower_dirs), top, mtime_clamp, p.merged)
        return LayerResult(diff_id, 0)


_Stubs = tuple[list[str], dict[str, tuple[int, int, int]]]


def _remove_stubs(upper: Path, stubs: _Stubs) -> None:
    """Remove the mount points a RUN's mounts created (deepest first), if still empty; then
    undo the copy-up of their parents when nothing else changed there (empty in the upper
    dir, not opaque, same mode and owner as below), so a mount alone adds no layer."""
    paths, ancestors = stubs
    _remove_empty(upper, paths)
    for rel in sorted(ancestors, key=lambda r: r.count("/"), reverse=True):
        host = os.path.join(upper, rel)
        try:
            st = os.lstat(host)
            if (stat.S_ISDIR(st.st_mode) and not os.listdir(host)
                    and (st.st_mode, st.st_uid, st.st_gid) == ancestors[rel]
                    and not _opaque(host)):
                os.rmdir(host)
        except OSError:
            pass


def _opaque(path: str) -> bool:
    for key in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, key, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _remove_empty(upper: Path, stubs: list[str]) -> None:
    for rel in sorted(set(stubs), key=lambda r: r.count("/"), reverse=True):
        host = os.path.join(upper, rel)
        try:
            if os.path.isdir(host) and not os.path.islink(host):
                os.rmdir(host)
            elif os.path.isfile(host) and os.path.getsize(host) == 0:
                os.unlink(host)
        except OSError:
            pass  # not empty: the step wrote there, keep it


def _pump(sock: socket.socket, output: OutputSink) -> int | None:
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        frames, buf = stream.split_frames(buf + chunk)
        for kind, payload in frames:
            if kind in (stream.STDOUT, stream.STDERR):
                output(payload)
            elif kind == stream.EXIT:
                return int(payload)
