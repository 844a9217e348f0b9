"""Azure plumbing shared by the source and the target: credentials and TLS, the one HTTP pool, URL
checks, retry policies and recovery from lost answers, ranged blob reads.
"""
