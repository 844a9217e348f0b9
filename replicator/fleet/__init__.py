"""Unattended runs: configured jobs, the Storage queue fan-out (enqueue, worker), fair ordering of
a timer tick, and the Azure Functions entry points.
"""
