"""Where computations run: local and remote workers, isolation, TLS, the cache."""
