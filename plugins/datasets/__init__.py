"""iqabench plugin: datasets (work in progress)."""
