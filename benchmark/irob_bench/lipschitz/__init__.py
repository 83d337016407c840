"""Local Lipschitz constants L_y(r) of a benchmark generator (docs/science.md §3): sampling and gradient estimators.

`estimate(generator, latent_dim, settings)` runs one estimator per class; `write_estimate` merges the result into
a dataset card; `check_radius` / `smallest_radius` choose r so that r * L_y(r) covers the largest eps.
"""

from irob_bench.lipschitz.estimate import ClassEstimate, LipschitzRun, estimate
from irob_bench.lipschitz.radius import RadiusCheck, RadiusSearch, check_radius, smallest_radius
from irob_bench.lipschitz.section import merge_estimate, write_estimate
from irob_bench.lipschitz.settings import EstimatorSettings, GradientSettings, SamplingSettings, make_settings
from irob_bench.lipschitz.stats import OrderStatistic, order_statistic, upper_bound

__all__ = [
    "ClassEstimate",
    "EstimatorSettings",
    "GradientSettings",
    "LipschitzRun",
    "OrderStatistic",
    "RadiusCheck",
    "RadiusSearch",
    "SamplingSettings",
    "check_radius",
    "estimate",
    "make_settings",
    "merge_estimate",
    "order_statistic",
    "smallest_radius",
    "upper_bound",
    "write_estimate",
]
