"""What an operator sees of a run without a terminal: the one log stream, progress as log events,
and OpenTelemetry run metrics.
"""
