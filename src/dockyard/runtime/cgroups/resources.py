"""`Resources`: the OCI `linux.resources` object, validated and normalised.

Pure parsing: nothing here touches the kernel. Conventions (matching runc/Docker):

* a value of 0 (or an absent key) means "not set": the cgroup file is left alone;
* -1 means "unlimited" for memory limit/swap/reservation, CPU quota and pids;
* `memory_swap` has OCI semantics: memory + swap together (so it must be >= the limit).

Fields of `linux.resources` that Dockyard does not enforce (kernel memory, hugepage
limits, block-I/O throttling, rdma, network, `unified`...) are not errors: their dotted
names are listed in `Resources.ignored` so the caller can warn, as Docker does.
"""

from __future__ import annotations


from ..._record import dataclass, field
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: kernel limits of cgroup v1 cpu.shares (values outside are clamped by the kernel)
MIN_SHARES = 2
MAX_SHARES = 262144
#: CFS bandwidth limits enforced by the kernel (microseconds)
MIN_CFS_PERIOD = 1000
MAX_CFS_PERIOD = 1000000
MIN_CFS_QUOTA = 1000
#: cgroup v1 blkio.weight range (BFQ accepts 1..1000; we use the stricter common range)
MIN_BLKIO_WEIGHT = 10
MAX_BLKIO_WEIGHT = 1000

_PREFIX = "linux.resources"

#: keys we read; anything else that is set is reported in `ignored`
_KNOWN = {
    "cpu": {"shares", "quota", "period", "cpus", "mems"},
    "memory": {"limit", "swap", "reservation", "disableOOMKiller"},
    "pids": {"limit"},
    "blockIO": {"weight"},
}


@dataclass(frozen=True)
class DeviceRule:
    """One OCI device-cgroup rule. `major`/`minor` None is the wildcard `*`."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def to_v1(self) -> str:
        """The line written to devices.allow / devices.deny, e.g. `c 1:3 rwm`."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @classmethod
    def from_oci(cls, obj: Any, index: int) -> DeviceRule:
        where = f"{_PREFIX}.devices[{index}]"
        if not isinstance(obj, dict):
            raise InvalidArgument(f"invalid {where}: expected an object, got {obj!r}")
        allow = obj.get("allow")
        if not isinstance(allow, bool):
            raise InvalidArgument(f"invalid {where}.allow {allow!r}: must be true or false")
        dtype = obj.get("type") or "a"
        if dtype not in ("a", "c", "b"):
            raise InvalidArgument(f"invalid {where}.type {dtype!r}: must be 'a', 'c' or 'b'")
        numbers: list[int | None] = []
        for key in ("major", "minor"):
            value = obj.get(key)
            if value is None or value == -1:
                numbers.append(None)
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                numbers.append(value)
            else:
                raise InvalidArgument(
                    f"invalid {where}.{key} {value!r}: must be a non-negative integer or absent"
                )
        access = obj.get("access") or "rwm"
        if not isinstance(access, str) or not set(access) <= set("rwm"):
            raise InvalidArgument(
                f"invalid {where}.access {access!r}: must be a combination of 'r', 'w' and 'm'"
            )
        # normalise to the kernel's canonical order, without duplicates
        access = "".join(c for c in "rwm" if c in access)
        return cls(allow=allow, type=dtype, major=numbers[0], minor=numbers[1], access=access)


@dataclass(frozen=True)
class Resources:
    """Resource limits for one container; every field None/False/() means "leave alone"."""

    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    memory_limit: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    disable_oom_killer: bool = False
    pids_limit: int | None = None
    blkio_weight: int | None = None
    devices: tuple[DeviceRule, ...] = ()
    #: dotted OCI names of fields that were set but are not enforced by Dockyard
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_oci(cls, resources: dict[str, Any] | None) -> Resources:
        """Validate and convert an OCI `linux.resources` object (None -> no limits)."""
        if resources is None:
            return cls()
        if not isinstance(resources, dict):
            raise InvalidArgument(f"invalid {_PREFIX}: expected an object, got {resources!r}")
        cpu = _section(resources, "cpu")
        mem = _section(resources, "memory")
        pids = _section(resources, "pids")
        blkio = _section(resources, "blockIO")

        shares = _int(cpu, "cpu", "shares")
        if shares is not None:
            if shares < 0:
                raise InvalidArgument(
                    f"invalid {_PREFIX}.cpu.shares {shares}: must not be negative"
                )
            # 0 = unset (runc); otherwise clamp as the v1 kernel does, so v2 converts the same
            shares = None if shares == 0 else min(max(shares, MIN_SHARES), MAX_SHARES)

        quota = _int(cpu, "cpu", "quota")
        if quota is not None and quota != -1 and quota != 0 and quota < MIN_CFS_QUOTA:
            raise InvalidArgument(
                f"invalid {_PREFIX}.cpu.quota {quota}: must be -1 (unlimited) "
                f"or at least {MIN_CFS_QUOTA} microseconds"
            )
        quota = None if quota == 0 else quota

        period = _int(cpu, "cpu", "period")
        if period is not None and period != 0 and not MIN_CFS_PERIOD <= period <= MAX_CFS_PERIOD:
            raise InvalidArgument(
                f"invalid {_PREFIX}.cpu.period {period}: must be between "
                f"{MIN_CFS_PERIOD} and {MAX_CFS_PERIOD} microseconds"
            )
        period = None if period == 0 else period

        cpus = _cpu_list(cpu, "cpus")
        mems = _cpu_list(cpu, "mems")

        limit = _memory(mem, "limit")
        swap = _memory(mem, "swap")
        reservation = _memory(mem, "reservation")
        if swap is not None and swap > 0:
            if limit is None or limit == -1:
                raise InvalidArgument(
                    f"invalid {_PREFIX}.memory.swap {swap}: a swap limit needs a memory limit "
                    "(memory.limit) as well"
                )
            if swap < limit:
                raise InvalidArgument(
                    f"invalid {_PREFIX}.memory.swap {swap}: memory+swap must be at least the "
                    f"memory limit {limit}"
                )
        if reservation is not None and reservation > 0 and limit is not None and limit > 0:
            if reservation > limit:
                raise InvalidArgument(
                    f"invalid {_PREFIX}.memory.reservation {reservation}: must not exceed the "
                    f"memory limit {limit}"
                )

        oom = mem.get("disableOOMKiller", False)
        if oom is None:
            oom = False
        if not isinstance(oom, bool):
            raise InvalidArgument(
                f"invalid {_PREFIX}.memory.disableOOMKiller {oom!r}: must be true or false"
            )

        pids_limit = _int(pids, "pids", "limit")
        if pids_limit is not None:
            # runc/Docker: 0 = unset, any negative value = unlimited
            pids_limit = None if pids_limit == 0 else max(pids_limit, -1)

        weight = _int(blkio, "blockIO", "weight")
        if weight is not None and weight != 0 and not MIN_BLKIO_WEIGHT <= weight <= MAX_BLKIO_WEIGHT:
            raise InvalidArgument(
                f"invalid {_PREFIX}.blockIO.weight {weight}: must be between "
                f"{MIN_BLKIO_WEIGHT} and {MAX_BLKIO_WEIGHT}"
            )
        weight = None if weight == 0 else weight

        raw_devices = resources.get("devices") or []
        if not isinstance(raw_devices, list):
            raise InvalidArgument(
                f"invalid {_PREFIX}.devices: expected a list, got {raw_devices!r}"
            )
        devices = tuple(DeviceRule.from_oci(d, i) for i, d in enumerate(raw_devices))

        return cls(
            cpu_shares=shares,
            cpu_quota=quota,
            cpu_period=period,
            cpuset_cpus=cpus,
            cpuset_mems=mems,
            memory_limit=limit,
            memory_swap=swap,
            memory_reservation=reservation,
            disable_oom_killer=oom,
            pids_limit=pids_limit,
            blkio_weight=weight,
            devices=devices,
            ignored=_ignored(resources),
        )

    def is_empty(self) -> bool:
        """True when no limit at all is asked for."""
        return self == Resources()


# ---- helpers ------------------------------------------------------------------


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2..262144] -> cgroup v2 cpu.weight [1..10000], as runc does."""
    shares = min(max(shares, MIN_SHARES), MAX_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """cgroup v1 blkio.weight [10..1000] -> cgroup v2 io.weight [1..10000]."""
    weight = min(max(weight, MIN_BLKIO_WEIGHT), MAX_BLKIO_WEIGHT)
    return 1 + ((weight - 10) * 9999) // 990


def valid_cpu_list(text: str) -> bool:
    """A kernel list like `0-3,5`: ascending ranges of non-negative integers."""
    import re  # not at module level: `run` without --cpuset-* does not need it

    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text, re.ASCII):
        return False
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            return False
    return True


def _section(resources: dict[str, Any], name: str) -> dict[str, Any]:
    value = resources.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {_PREFIX}.{name}: expected an object, got {value!r}")
    return value


def _int(section: dict[str, Any], name: str, key: str) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"invalid {_PREFIX}.{name}.{key} {value!r}: expected an integer"
        )
    return value


def _memory(section: dict[str, Any], key: str) -> int | None:
    value = _int(section, "memory", key)
    if value is None or value == 0:
        return None
    if value < -1:
        raise InvalidArgument(
            f"invalid {_PREFIX}.memory.{key} {value}: must be -1 (unlimited) "
            "or a positive number of bytes"
        )
    return value


def _cpu_list(section: dict[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid {_PREFIX}.cpu.{key} {value!r}: expected a string")
    value = value.strip()
    if not value:
        return None
    if not valid_cpu_list(value):
        raise InvalidArgument(
            f"invalid {_PREFIX}.cpu.{key} {value!r}: expected a list like '0-3,5'"
        )
    return value


def _ignored(resources: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for key, value in resources.items():
        if key == "devices" or _unset(value):
            continue
        if key not in _KNOWN:
            out.append(key)
            continue
        if isinstance(value, dict):
            out.extend(f"{key}.{k}" for k, v in value.items() if k not in _KNOWN[key] and not _unset(v))
    return tuple(sorted(out))


def _unset(value: Any) -> bool:
    return value is None or value == 0 or value == [] or value == {} or value == ""
