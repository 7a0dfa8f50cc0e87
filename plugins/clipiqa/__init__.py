"""iqabench plugin: clipiqa (work in progress)."""
