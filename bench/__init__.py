"""Benchmarks: tether against dockerd and podman on the same machine, in the same run.

``python -m bench.run`` (``make bench``) is the entry point; see bench/run.py.
"""
