"""Helpers shared by test modules: test modules and conftest files import from here (and from the
other helper modules: tests/e2e/world.py, tests/envelope.py, tests/reliability/leaks.py,
tests/azurite_process.py), never from a test module or a conftest file. Fixtures live in the
conftest files."""
