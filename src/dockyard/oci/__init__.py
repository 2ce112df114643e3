"""OCI runtime-spec documents: Docker's defaults and helpers to build config.json.

Tier 1: imports only dockyard.errors and dockyard.kernel.caps.
"""
