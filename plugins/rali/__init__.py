"""iqabench plugin: rali (work in progress)."""
