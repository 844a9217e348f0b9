"""The engine: one replication run (base choice, listing to planning to bounded concurrent writes,
checkpoints, verify, commit), its time and byte budgets, and --snapshot-now / --source-keep.
"""
