"""The ``clsctl`` command line: thin commands over the Python API."""
