"""The emulator's blob plane: the page-blob backend and its store, wire formats (XML, headers),
leases, conditional headers, signing and authorization (bearer, Shared Key, SAS). Its routes are
routes/blob.py, its errors errors/blob.py.
"""
