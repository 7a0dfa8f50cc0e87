"""iqabench plugin: brisque (work in progress)."""
