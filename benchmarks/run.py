"""Run the benchmark suite from a source checkout.

The suite lives in the package (``fasttransport.bench``, also ``fasttransport
bench`` and ``python -m fasttransport bench`` once installed); this wrapper
writes its results next to this file, into ``results/``, and refreshes the
tables in ``README.md`` here. Every option of the suite works:

    python benchmarks/run.py [--quick] [--scenarios seq,parser] [--clients ...] [--reps N]
"""

from __future__ import annotations

import os
import sys

from fasttransport.bench import main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(
        main(
            default_out=os.path.join(HERE, "results"),
            default_readme=os.path.join(HERE, "README.md"),
        )
    )
