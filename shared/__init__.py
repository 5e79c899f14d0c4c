"""ga4-stitch: server-side identity stitching and GA4 sessions.

The package both Cloud Functions deploy with. Layers:

- domain core (pure, no I/O, no clock, no environment): ``events`` (raw-event contract),
  ``sessions``, ``identity``, ``state``, ``resolution``;
- adapters: ``firestore_store``, ``pubsub``, ``ga4_client``;
- services that wire one message through core and adapters: ``resolve_service``,
  ``forward_service``;
- ``settings`` (read once from the environment), ``errors``, ``logs``, ``retry``.
"""
