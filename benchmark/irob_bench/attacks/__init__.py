"""The attacks: the unconstrained cascade (APGD, PGD, Square, minimum-norm), the in-distribution latent attack, their
configs and presets, per-example keyed noise, re-verification of adversarials and the sanity flags."""
