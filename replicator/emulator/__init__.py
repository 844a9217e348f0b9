"""A local emulator of the Azure surface the replicator uses: ARM Microsoft.Compute and the blob plane."""
