"""Architectures a submission may import: `from irob_bench.models import SmallCNN`.

The code lives in irob_bench.reference.models; this import path stays because the reference submissions (and every
submission `irob-bench train` writes) import it, and their file hashes are recorded in the committed runs.
"""

from irob_bench.reference.models import LipschitzMLP, MaxMin, SmallCNN

__all__ = ["LipschitzMLP", "MaxMin", "SmallCNN"]
