"""Developer tools the replication code never imports: the demo, the benchmark and the one disk
builder they and the tests share.
"""
