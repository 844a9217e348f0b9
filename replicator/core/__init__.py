"""The pure core: range arithmetic, planning, verdicts, the error tree, formatting, secret masking.
No I/O, no Azure SDK calls; everything here is unit- and property-tested.
"""
