"""The ``audit`` command line. :func:`main` is the only exception → exit-code boundary."""

from audit.cli.app import cli, main

__all__ = ["cli", "main"]
