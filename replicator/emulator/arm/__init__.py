"""The emulator's ARM Microsoft.Compute backend: disks, snapshots and grants, their typed model,
what a disk's blob holds, and exported VHD footers. Its routes are routes/arm.py, its errors errors/arm.py.
"""
