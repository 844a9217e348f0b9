"""The emulator's blob plane: routes, the page-blob backend and its store, wire formats (XML,
headers), leases, conditional headers, Shared Key and SAS signing.
"""
