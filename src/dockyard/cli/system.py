"""info, version, and the shim's exit hook (`system _exited`)."""

from __future__ import annotations

import os
import platform
import sys

from .. import API_VERSION, __version__
from .args import Parser, engine


def cmd_version(argv: list[str]) -> int:
    p = Parser("version", usage="dockyard version [OPTIONS]", description="Show the Dockyard version information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    ns = p.parse_args(argv)
    data = {"Client": {"Version": __version__, "ApiVersion": API_VERSION, "GoVersion": "",
                       "PythonVersion": platform.python_version(), "Os": "linux",
                       "Arch": _arch(), "Platform": {"Name": "Dockyard"}},
            "Server": {"Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                       "Os": "linux", "Arch": _arch(), "KernelVersion": platform.release(),
                       "Components": [{"Name": "Engine", "Version": __version__}]}}
    if ns.format:
        from .formatting import print_inspect

        print_inspect([data], ns.format)
        return 0
    c, s = data["Client"], data["Server"]
    print(f"Client:\n Version:           {c['Version']}\n API version:       {c['ApiVersion']}\n"
          f" Python version:    {c['PythonVersion']}\n OS/Arch:           linux/{c['Arch']}\n\n"
          f"Server: Dockyard Engine\n Engine:\n  Version:          {s['Version']}\n"
          f"  API version:      {s['ApiVersion']} (minimum version {s['MinAPIVersion']})\n"
          f"  OS/Arch:          linux/{s['Arch']}\n  Kernel Version:   {s['KernelVersion']}")
    return 0


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def info_data() -> dict:
    from ..engine import system

    return system.info(engine())


def cmd_info(argv: list[str]) -> int:
    p = Parser("info", usage="dockyard info [OPTIONS]", description="Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    ns = p.parse_args(argv)
    d = info_data()
    if ns.format:
        from .formatting import print_inspect

        print_inspect([d], ns.format)
        return 0
    print(f"Client:\n Version:    {__version__}\n Context:    default\n\nServer:\n"
          f" Containers: {d['Containers']}\n  Running: {d['ContainersRunning']}\n  Paused: {d['ContainersPaused']}\n"
          f"  Stopped: {d['ContainersStopped']}\n Images: {d['Images']}\n Server Version: {d['ServerVersion']}\n"
          f" Storage Driver: {d['Driver']}\n" + "".join(f"  {k}: {v}\n" for k, v in d["DriverStatus"]) +
          f" Logging Driver: {d['LoggingDriver']}\n Cgroup Driver: {d['CgroupDriver']}\n"
          f" Cgroup Version: {d['CgroupVersion']}\n Runtimes: {' '.join(d['Runtimes'])}\n"
          f" Default Runtime: {d['DefaultRuntime']}\n Kernel Version: {d['KernelVersion']}\n"
          f" Operating System: {d['OperatingSystem']}\n OSType: linux\n Architecture: {d['Architecture']}\n"
          f" CPUs: {d['NCPU']}\n Total Memory: {d['MemTotal'] / 1024**3:.2f}GiB\n Name: {d['Name']}\n"
          f" Docker Root Dir: {d['DockerRootDir']}")
    return 0


def cmd_exited(argv: list[str]) -> int:
    """Run by a container's shim after the container exits: record it, clean up, --rm."""
    from ..engine import lifecycle

    if len(argv) != 1:
        print("usage: dockyard system _exited CONTAINER-ID", file=sys.stderr)
        return 2
    lifecycle.handle_exit(engine(), argv[0])
    return 0
