"""The `nqs` command line: a thin layer over `nqs_core`.

Importing it has no side effect: plugin commands are attached by `main`
(or by `attach_plugin_commands` on an application from `make_app`).
"""

from ._app import app as app, attach_plugin_commands as attach_plugin_commands, main as main, make_app as make_app
