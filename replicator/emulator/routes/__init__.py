"""The emulator's HTTP surface: the blob and ARM routes, and the context they share (the backends and
the middleware options one server runs with).
"""
