"""What a model costs: latency, memory, throughput and parameters, and the efficiency study (`iqabench bench`)."""
