"""iqabench plugin: rl (work in progress)."""
