"""The distribution client: OCI distribution / Docker Registry HTTP API v2, auth, credentials.

Tier 2: imports images (references), kernel, _util, paths and errors; the engine composes it.
"""
