"""Every syscall Dockyard makes that Python's os module lacks, via ctypes, errno-faithful.

Tier 1: imports only dockyard.errors.
"""
