"""Entry script for the shim: `python -E -s -S shim_entry.py CONFIG`.

Run with -E -s -S (not -I, which would drop this directory from sys.path).
A script is compiled on every start, a module is loaded from its cached bytecode, so this
stub is all that is compiled; the shim itself comes from __pycache__.
"""
import shim

shim.main()
