"""``make bench``: throughput of the invitation fan-out and of the HTTP APIs.

See docs/performance.md for the method and the latest figures.
"""
