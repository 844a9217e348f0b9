"""The emulator's middlewares, in the order a request meets them: the link model (latency, per-blob
limits), injected faults, authentication.
"""
