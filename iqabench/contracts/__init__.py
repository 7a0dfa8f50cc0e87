"""The plugin contracts: what a model, dataset, trainer and converter provide, and the hooks that register them."""
