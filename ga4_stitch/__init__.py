"""The ``ga4-stitch`` command: the whole pipeline on the emulators, replay, simulation, scoring."""
