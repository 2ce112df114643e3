"""The OCI runtime: bundles to running containers, cgroups, the shim."""
