"""One module per ``iqabench`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. :mod:`iqabench.cli` discovers them, so adding a
command is adding a module.
"""
