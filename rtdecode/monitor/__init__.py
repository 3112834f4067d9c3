"""The operator monitor: data feeds without Qt (``feeds``) and the Qt window (``window``)."""
