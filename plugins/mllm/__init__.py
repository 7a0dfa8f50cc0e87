"""iqabench plugin: mllm (work in progress)."""
