"""``python -m fasttransport.bench``: run the benchmark suite."""

import sys

from .runner import main

sys.exit(main())
