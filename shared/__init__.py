"""ga4-stitch: server-side identity stitching and GA4 sessions.

The package both Cloud Functions deploy with, in floors (each imports only those below
it; ``docs/architecture.md`` draws them, ``tests/unit/test_floors.py`` keeps them true):

- ``domain``: the pure core (no I/O, no clock, no environment);
- ``ports``: the interfaces the services need;
- ``services``: the use cases (resolve, forward, inline, linking, inspect, erase);
- ``adapters``: Firestore, Pub/Sub and GA4's Measurement Protocol behind those ports;
- ``bootstrap``: the one place that reads ``settings`` and wires the rest;
- beside them ``settings``, ``errors``, ``logs``, ``retry``.
"""
