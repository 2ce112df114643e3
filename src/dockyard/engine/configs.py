"""Container configuration: merging the image's config into the container's (Docker's rules),
and the files of the -init layer (/etc/hosts, /etc/resolv.conf)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
         "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """KEY=VALUE lists: `extra` overrides `base` in place, new keys are appended."""
    env = list(base)
    keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for e in extra:
        k = e.split("=", 1)[0]
        if k in keys:
            env[keys[k]] = e
        else:
            keys[k] = len(env)
            env.append(e)
    return env


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """Docker's merge of the image's config into the container's (run/create)."""
    img = image_config.get("config") or {}
    out = dict(config)
    out["Env"] = merge_env(img.get("Env") or [], config.get("Env") or [])
    if config.get("Entrypoint") is None:
        out["Entrypoint"] = img.get("Entrypoint")
        if not config.get("Cmd"):
            out["Cmd"] = img.get("Cmd")
    elif not config.get("Cmd"):
        out["Cmd"] = None  # --entrypoint resets the image's CMD, as Docker does
    for key in ("WorkingDir", "User", "StopSignal", "Shell", "Healthcheck", "OnBuild"):
        if not out.get(key) and img.get(key):
            out[key] = img[key]
    labels = dict(img.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    out["Labels"] = labels
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(img.get(key) or {})
        merged.update(config.get(key) or {})
        out[key] = merged or None
    return out


def resolv_conf(hc: dict[str, Any], embedded: list[str] | None = None) -> str:
    """resolv.conf for a container: --dns servers, else the embedded DNS of its user network
    (`embedded`), else the host's servers that the container can reach."""
    dns = embedded or hc.get("Dns") or []
    search = hc.get("DnsSearch") or []
    opts = hc.get("DnsOptions") or []
    lines: list[str] = []
    if not dns:
        try:
            with open("/etc/resolv.conf") as f:
                host = f.read().splitlines()
        except OSError:
            host = []
        for line in host:
            parts = line.split()
            if parts and parts[0] == "nameserver" and len(parts) > 1 and parts[1].startswith("127."):
                continue  # a host-local resolver is unreachable from the container
            if parts and parts[0] in ("search", "options") and (search or opts):
                continue
            lines.append(line)
    else:
        lines += [f"nameserver {d}" for d in dns]
    if search:
        lines.append("search " + " ".join(search))
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


def read_or_default_hosts(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return HOSTS
