"""The emulator's aiohttp middlewares, outermost first: injected faults, the ARM clock's control
route, the link model (latency, per-blob limits).
"""
