"""Contracts: the types every layer shares, importing nothing of tether but ``tether.errors``.

* ``model``: networks and endpoints as stored (libnetwork's CNM records);
* ``pools``: a network's validated IPAM configuration;
* ``driver``: the Protocol a network driver implements.
* ``cluster``: what the overlay driver and the cluster view share (``Peer``, VNIs, Protocols).

This package is the bottom of the import graph (see ``docs/architecture.md``):
``engine``, ``drivers``, ``api`` and ``store`` import it, it imports none of them.
"""
