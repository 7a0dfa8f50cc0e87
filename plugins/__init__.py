"""iqabench's built-in plugins, each registered through the ``iqabench`` entry-point group."""
