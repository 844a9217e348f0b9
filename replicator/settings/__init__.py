"""The documented knobs (flags and environment variables) and one frozen Config built and validated
from them.
"""
