"""Replicates Azure managed-disk incremental snapshots to a page blob in another region."""
