"""`run`/`create` flags -> Docker's Config and HostConfig documents (as the docker CLI builds them)."""

from __future__ import annotations

import os

from .. import _util
from ..errors import InvalidArgument, Unsupported
from .args import REMAINDER, Namespace, Parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_flags(p: Parser) -> None:
    a = p.add_argument
    a("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("--rm", action="store_true", help="Automatically remove the container when it exits")
    a("--name", help="Assign a name to the container")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("-w", "--workdir", help="Working directory inside the container")
    a("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("-h", "--hostname", help="Container host name")
    a("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--init", action="store_true", help="Run an init inside the container that forwards signals and reaps processes")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--stop-signal", help="Signal to stop the container")
    a("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    a("--ulimit", action="append", default=[], help="Ulimit options")
    a("--shm-size", help="Size of /dev/shm")
    a("--sysctl", action="append", default=[], help="Sysctl options")
    a("--device", action="append", default=[], help="Add a host device to the container")
    a("--log-driver", default="json-file", help="Logging driver for the container")
    a("--log-opt", action="append", default=[], help="Log driver options")
    a("--network", "--net", dest="network", default="default", help="Connect a container to a network")
    a("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    a("--network-alias", "--net-alias", dest="network_alias", action="append", default=[],
      help="Add network-scoped alias for the container")
    a("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("--dns-search", action="append", default=[], help="Set custom DNS search domains")
    a("--dns-option", action="append", default=[], help="Set DNS options")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    a("--pid", help="PID namespace to use")
    a("--ipc", help="IPC mode to use")
    a("--uts", help="UTS namespace to use")
    a("--runtime", help="Runtime to use for this container")
    a("--detach-keys", help="Override the key sequence for detaching a container")
    a("--sig-proxy", default="true", help="Proxy received signals to the process (non-TTY mode only)")
    a("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    a("--cpus", help="Number of CPUs")
    a("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("-m", "--memory", help="Memory limit")
    a("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", help="Memory soft limit")
    a("--kernel-memory", help="Kernel memory limit (not supported)")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
    a("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    # volumes and mounts (parsed by cli/mountflags.py)
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--mount", action="append", default=[], help="Attach a filesystem mount to the container")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("--volumes-from", action="append", default=[], help="Mount volumes from the specified container(s)")
    a("--volume-driver", default="", help="Optional volume driver for the container")
    a("--pull", default="missing", help='Pull image before running ("always", "missing", "never")')
    a("image", help="Image")
    a("command", nargs=REMAINDER, help="Command and arguments")


def parser(cmd: str) -> Parser:
    p = Parser(cmd, usage=f"dockyard {cmd} [OPTIONS] IMAGE [COMMAND] [ARG...]",
               description="Create and run a new container from an image" if cmd == "run"
               else "Create a new container")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the pull output")
    add_flags(p)
    return p


def _env_files(files: list[str]) -> list[str]:
    out = []
    for path in files:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise InvalidArgument(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            out.append(_env_item(line))
    return out


def _env_item(item: str) -> str:
    if item.startswith("=") or not item.strip() or "\0" in item:
        raise InvalidArgument(f"invalid environment variable: {item}")
    if "=" in item:
        return item
    # `-e NAME` takes the value from the caller's environment; unset -> dropped (Docker: kept unset)
    return f"{item}={os.environ[item]}" if item in os.environ else item


def _ulimits(items: list[str]) -> list[dict[str, Any]]:
    out = []
    for it in items:
        name, _, val = it.partition("=")
        soft, _, hard = val.partition(":")
        try:
            s = int(soft)
            h = int(hard) if hard else s
        except ValueError:
            raise InvalidArgument(f"invalid ulimit argument: {it}") from None
        if s > h:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}")
        import resource

        if not hasattr(resource, "RLIMIT_" + name.upper()):
            raise InvalidArgument(f"invalid ulimit type: {name}")
        out.append({"Name": name, "Soft": s, "Hard": h})
    return out


def _devices(items: list[str]) -> list[dict[str, str]]:
    out = []
    for it in items:
        parts = it.split(":")
        src = parts[0]
        dst = parts[1] if len(parts) > 1 and parts[1].startswith("/") else src
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        if not os.path.exists(src):
            raise InvalidArgument(f"error gathering device information while adding custom device \"{src}\": no such file or directory")
        out.append({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms})
    return out


def to_docker(ns: Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build Config and HostConfig the way the docker CLI does for `docker run`."""
    if ns.kernel_memory:
        raise InvalidArgument("--kernel-memory is not supported: kernel memory limits were removed "
                              "from the Linux kernel (cgroup v2 has none) and Docker deprecated the flag")
    if ns.log_driver not in ("json-file",):
        raise Unsupported(f"logging driver \"{ns.log_driver}\" is not supported: only json-file")
    from .portspec import expose, port_bindings

    net = ns.network
    if net.startswith("container:") and (ns.publish or ns.publish_all):
        raise InvalidArgument("conflicting options: port publishing and the container type network mode")
    if net in ("host", "none") and ns.publish:
        ns.publish = []  # Docker: published ports are discarded when using host/none network mode
    bindings, exposed = port_bindings(ns.publish)
    exposed.update(expose(ns.expose))
    attach = [a.lower() for a in ns.attach]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise InvalidArgument(f"invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR")
    if ns.detach and (ns.rm is False) and attach:
        raise InvalidArgument("Conflicting options: -a and -d")
    env = _env_files(ns.env_file) + [_env_item(e) for e in ns.env]
    entrypoint = None
    if ns.entrypoint is not None:
        entrypoint = [ns.entrypoint] if ns.entrypoint else []
    cmd = list(ns.command) if ns.command else None
    if ns.hostname and not _hostname_ok(ns.hostname):
        raise InvalidArgument(f"invalid hostname format: {ns.hostname}")
    attach_stdout = not ns.detach and (not attach or "stdout" in attach)
    attach_stderr = not ns.detach and (not attach or "stderr" in attach)
    attach_stdin = ns.interactive and not ns.detach and (not attach or "stdin" in attach)
    config: dict[str, Any] = {
        "Hostname": ns.hostname or "", "Domainname": "", "User": ns.user or "",
        "AttachStdin": attach_stdin, "AttachStdout": attach_stdout, "AttachStderr": attach_stderr,
        "Tty": ns.tty, "OpenStdin": ns.interactive, "StdinOnce": attach_stdin,
        "Env": env, "Cmd": cmd, "Image": ns.image, "Volumes": None, "WorkingDir": ns.workdir or "",
        "Entrypoint": entrypoint, "OnBuild": None, "Labels": _util.kv_map(ns.label, "label"),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if ns.mac_address:
        config["MacAddress"] = ns.mac_address
    if ns.stop_signal:
        from ..engine.control import parse_signal

        parse_signal(ns.stop_signal)
        config["StopSignal"] = ns.stop_signal
    if ns.stop_timeout is not None:
        config["StopTimeout"] = ns.stop_timeout
    if ns.workdir and not ns.workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{ns.workdir}' is invalid, it needs to be an absolute path")
    hc: dict[str, Any] = {
        "Binds": None, "ContainerIDFile": "", "NetworkMode": "default" if net == "bridge" else net,
        "PortBindings": bindings, "PublishAllPorts": ns.publish_all, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": ns.rm, "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": ns.cap_add or None, "CapDrop": ns.cap_drop or None,
        "Dns": ns.dns, "DnsOptions": ns.dns_option, "DnsSearch": ns.dns_search,
        "ExtraHosts": ns.add_host or None, "IpcMode": ns.ipc or "private", "PidMode": ns.pid or "",
        "UTSMode": ns.uts or "", "Privileged": ns.privileged, "ReadonlyRootfs": ns.read_only,
        "SecurityOpt": ns.security_opt or None, "Init": ns.init or None,
        "Runtime": ns.runtime or "dockyard", "ShmSize": _util.parse_bytes(ns.shm_size) if ns.shm_size else 67108864,
        "Sysctls": _util.kv_map(ns.sysctl, "sysctl") or None, "Ulimits": _ulimits(ns.ulimit) or None,
        "Devices": _devices(ns.device), "LogConfig": {"Type": "json-file", "Config": _util.kv_map(ns.log_opt, "log-opt")},
        "CpuShares": ns.cpu_shares or 0, "Memory": 0, "NanoCpus": 0, "CpuPeriod": ns.cpu_period or 0,
        "CpuQuota": ns.cpu_quota or 0, "CpusetCpus": ns.cpuset_cpus or "", "CpusetMems": ns.cpuset_mems or "",
        "BlkioWeight": ns.blkio_weight or 0, "MemoryReservation": 0, "MemorySwap": 0,
        "OomKillDisable": ns.oom_kill_disable, "PidsLimit": ns.pids_limit, "KernelMemory": 0,
    }
    for opt in ns.log_opt:
        key = opt.partition("=")[0]
        if key not in ("max-size", "max-file", "compress", "labels", "env", "tag"):
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    if "max-file" in hc["LogConfig"]["Config"]:
        try:
            if int(hc["LogConfig"]["Config"]["max-file"]) < 1:
                raise ValueError
        except ValueError:
            raise InvalidArgument("invalid value for max-file: must be a positive integer") from None
    if "max-size" in hc["LogConfig"]["Config"]:
        _util.parse_bytes(hc["LogConfig"]["Config"]["max-size"])
    for so in ns.security_opt:
        key, _, val = so.replace(":", "=", 1).partition("=")
        if key not in ("no-new-privileges", "label", "apparmor", "seccomp"):
            raise InvalidArgument(f"Invalid --security-opt: \"{so}\"")
        if key in ("seccomp", "apparmor") and val != "unconfined":
            raise Unsupported(f"--security-opt {so}: {key} profiles are not supported yet "
                              f"(containers run without one; only '{key}=unconfined' is accepted)")
    for flag, value in (("--pid", ns.pid), ("--ipc", ns.ipc), ("--uts", ns.uts)):
        allowed = {"--pid": ("", "host"), "--ipc": ("", "host", "private", "shareable", "none"),
                   "--uts": ("", "host")}[flag]
        if value and value not in allowed and not (flag != "--uts" and value.startswith("container:")):
            raise InvalidArgument(f"{flag}: invalid mode \"{value}\"")
    if ns.memory:
        hc["Memory"] = _util.parse_bytes(ns.memory)
        if hc["Memory"] < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if ns.memory_swap:
        hc["MemorySwap"] = -1 if ns.memory_swap == "-1" else _util.parse_bytes(ns.memory_swap)
        if not hc["Memory"]:
            raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit")
        if hc["MemorySwap"] != -1 and hc["MemorySwap"] < hc["Memory"]:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if ns.memory_reservation:
        hc["MemoryReservation"] = _util.parse_bytes(ns.memory_reservation)
    if ns.cpus:
        try:
            hc["NanoCpus"] = int(round(float(ns.cpus) * 1e9))
        except ValueError:
            raise InvalidArgument(f"invalid argument \"{ns.cpus}\" for \"--cpus\" flag: failed to parse {ns.cpus} as a rational number") from None
        if hc["NanoCpus"] > os.cpu_count() * 1_000_000_000:  # type: ignore[operator]
            raise InvalidArgument(f"range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only {os.cpu_count()} CPUs available")
        if hc["CpuPeriod"] or hc["CpuQuota"]:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if ns.cpu_period and not 1000 <= ns.cpu_period <= 1000000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if ns.cpu_quota and ns.cpu_quota < 1000 and ns.cpu_quota != -1:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if ns.blkio_weight and not 10 <= ns.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    if ns.pull not in ("missing", "never", "always"):
        raise InvalidArgument(f"invalid pull option: '{ns.pull}': must be one of \"always\", \"missing\" or \"never\"")
    if ns.volume or ns.mount or ns.tmpfs or ns.volumes_from or ns.volume_driver:  # volumes and mounts
        from .mountflags import apply_mount_flags

        apply_mount_flags(ns, config, hc)
    return config, hc


def networking_config(ns: Namespace) -> dict[str, Any]:
    """NetworkingConfig as the docker CLI sends it (endpoint settings for --ip and friends)."""
    from .portspec import endpoints_config

    eps = endpoints_config(ns.network, ns.ip, ns.network_alias, ns.mac_address)
    return {"EndpointsConfig": eps} if eps else {}


def _hostname_ok(h: str) -> bool:
    import re

    return bool(re.match(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$", h))


def split_command(s: str) -> list[str]:
    import shlex  # not at module level: it imports re

    return shlex.split(s)
