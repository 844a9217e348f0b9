"""The target: the base page blob (page_blob: inspect, create, resize, write, commit), its lease
(lease), the state and restore-point metadata codecs (state), and its restore points (restore_points:
list, choose, check, restore to a disk, prune).
"""
