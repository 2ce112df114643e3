"""The `dockyard` command line: argv in, engine calls out, Docker's output formats.

Tier 5: imports the engine (and errors/_util); never the runtime or kernel directly.
"""
