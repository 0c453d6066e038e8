"""The operator console: server-rendered pages on the admin port (``/console/``)."""
