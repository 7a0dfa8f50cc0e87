"""Package discovery with the one mapping pyproject.toml cannot express.

The built-in plugins live in ``plugins/`` and install as ``iqabench_plugins``
(``[tool.setuptools.package-dir]`` in pyproject.toml); every package under
``iqabench/`` and ``plugins/`` is found here, so a new sub-package needs no
list to be kept up to date. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

core = find_packages(include=["iqabench", "iqabench.*"])
plugins = ["iqabench_plugins" + name[len("plugins"):] for name in find_packages(include=["plugins", "plugins.*"])]
setup(packages=core + plugins)
