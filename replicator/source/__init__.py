"""The source: managed disks and their incremental snapshots through ARM (arm), SAS grants within a
snapshot family's slots (grants), the diff listing (listing), and ranged reads through a SAS (reader).
"""
