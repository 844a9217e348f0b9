"""The engine: one replication run (base choice, listing to planning to bounded concurrent writes,
checkpoints, commit), its time and byte budgets, verification, progress records, and status
reading.
"""
