"""The target: the base page blob (inspect, create, lease, resize, write, state), and its restore
points (list, choose, check, restore to a disk, prune).
"""
