"""The emulator's aiohttp middlewares, outermost first: the Entra ID tenant's endpoints (entra.py),
injected faults, the ARM clock's control route, the link model (latency, per-blob limits).
"""
