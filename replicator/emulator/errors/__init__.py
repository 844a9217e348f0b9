"""The emulator's refusals as Azure answers them: the coded-error factory (as in Azurite, one row per
error code: status, code, message template) and the two planes' tables, blob and ARM.
"""
