"""The ``spikeinit`` command line."""
