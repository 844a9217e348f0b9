"""The source: managed disks and their incremental snapshots through ARM, SAS grants within a
snapshot family's slots, the diff listing, and --snapshot-now / --source-keep.
"""
