"""Transitional re-export; the class lives in replicator.emulator.process (the demo uses it too)."""

from replicator.emulator.process import EmulatorProcess

__all__ = ["EmulatorProcess"]
