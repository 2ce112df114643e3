"""Local volumes: the store under <root>/volumes and the local driver's mounts.

Tier 2: imports kernel, _util, paths and errors only; the engine composes it.
"""
