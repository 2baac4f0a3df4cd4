"""The `nqs` command line: a thin layer over `nqs_core`."""

from ._app import app as app, main as main
