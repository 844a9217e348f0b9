"""The emulator's ARM Microsoft.Compute surface: routes, the disk and snapshot backend, its models,
ARM error bodies, and exported VHD footers.
"""
