"""Lab: simulated hosts (network namespaces) on one machine, for tests and demos.

The public API lives in :mod:`tether.lab.lab` (``Lab``, ``LabHost``, ``LabError``) and the
``tether lab`` commands in :mod:`tether.lab.cli`. This package imports nothing heavy itself.
"""
