"""The Docker Engine API server (`dockyard serve`): HTTP in, engine calls, Docker's JSON out.

Tier 4: imports the engine and everything below it; handlers only translate.
"""
