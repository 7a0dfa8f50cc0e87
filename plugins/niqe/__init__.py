"""iqabench plugin: niqe (work in progress)."""
