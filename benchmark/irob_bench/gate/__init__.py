"""`irob-bench gate`: fail CI when a submission's robustness regressed against a baseline run.

baseline (resolve REF, load outcomes) -> settings (repeat the baseline's evaluation, name differences)
-> run (evaluate, pair per-example outcomes) -> compare/stats (drop, exact one-sided McNemar)
-> report/render (table, JSON, JUnit XML, GitHub annotations). See docs/ci.md.
"""
