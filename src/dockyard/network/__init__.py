"""Networking services: rtnetlink, network namespaces, IPAM, packet filter, ports, DNS.

Tier 2: imports kernel, oci, _util, paths and errors only; the engine composes it.
"""
