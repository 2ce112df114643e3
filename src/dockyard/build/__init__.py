"""Dockerfile builds: parse, expand, cache and plan steps; a backend interface runs them.

Tier 2: imports only dockyard.images (and errors/_util/paths).
"""
