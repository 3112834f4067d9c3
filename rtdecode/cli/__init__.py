"""The ``rtdecode`` command line: ``main`` parses and dispatches, ``live`` and ``offline``
hold the commands.
"""
