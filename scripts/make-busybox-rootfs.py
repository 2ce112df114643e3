#!/usr/bin/env python3
"""Make a reproducible busybox rootfs tar from Debian's busybox-static, offline.

Usage: make-busybox-rootfs.py [OUT]   (default /var/cache/dockyard/busybox-rootfs.tar)

The same busybox binary always gives the same tar bytes (sorted entries, fixed mtimes,
numeric owners), so the imported layer's diffID is stable across runs and machines.
The output is cached: it is rebuilt only when missing or when the binary changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"
MTIME = 1700000000  # fixed: reproducible output

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
floppy:x:11:
news:x:13:
uucp:x:14:
audio:x:29:
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""


def build(out: str) -> str:
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    digest = hashlib.sha256(binary).hexdigest()
    stamp = out + ".sha256"
    if os.path.exists(out) and os.path.exists(stamp) and open(stamp).read().strip() == digest:
        return out
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True).stdout.split()
    dirs = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
            "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "sbin": 0o755,
            "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755}
    files = {"etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode(),
             "etc/shadow": b"root:*::0:::::\nnobody:*::0:::::\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(ti: tarfile.TarInfo, data: bytes | None = None) -> None:
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "", ""
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []
        for d, mode in dirs.items():
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            entries.append((d, ti, None))
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode = len(binary), 0o755
        entries.append(("bin/busybox", ti, binary))
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o640 if name == "etc/shadow" else 0o644
            entries.append((name, ti, data))
        for path in applets:
            path = path.lstrip("/")
            if path == "bin/busybox" or any(path == e[0] for e in entries):
                continue
            ti = tarfile.TarInfo(path)
            ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, "bin/busybox", 0o755
            entries.append((path, ti, None))
        for _name, ti, data in sorted(entries, key=lambda e: e[0]):
            if ti.type == tarfile.LNKTYPE:
                continue
            add(ti, data)
        for _name, ti, data in sorted(entries, key=lambda e: e[0]):
            if ti.type == tarfile.LNKTYPE:
                add(ti)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    with open(stamp, "w") as f:
        f.write(digest + "\n")
    return out


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/dockyard/busybox-rootfs.tar"))
