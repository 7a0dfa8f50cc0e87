"""iqabench plugin: synthetic (work in progress)."""
