"""``python -m iqabench`` (and ``accelerate launch -m iqabench``)."""

import sys

from iqabench.cli import main

sys.exit(main())
