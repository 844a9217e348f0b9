"""`replicate bench`: one run, every contender, the same emulator modelling a cross-region link.

See docs/benchmarks.md for what is measured and why; harness.py is the entry point.
"""
