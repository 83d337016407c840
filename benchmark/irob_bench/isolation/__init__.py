"""Isolated evaluation: the trusted parent (sandbox: levels, limits, bubblewrap) and the untrusted worker process."""
