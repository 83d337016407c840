"""irob-bench: adversarial robustness measured against the intrinsic ceiling of generated data."""

__version__ = "0.2.0"
