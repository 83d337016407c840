"""`python -m irob_bench ...` (and `torchrun ... -m irob_bench evaluate ...`): the irob-bench command line."""

import sys

from irob_bench.cli import main

sys.exit(main())
