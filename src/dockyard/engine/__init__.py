"""The engine: composes images, runtime (and later network, volumes, build) into Docker's verbs.

Tier 3: the only package that imports the services together; front ends call only this.
"""
