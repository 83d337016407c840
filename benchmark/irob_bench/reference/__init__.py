"""Reference classifiers: architectures (models), adversarial training (training) and the baselines `irob-bench train`
writes as submissions (baselines)."""
