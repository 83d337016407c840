"""The leaderboard: a versioned SQL store of evaluation results (store.py) and its rendered views (render.py).

Kept import-light (no torch) so the CLI can build its parser quickly; import the submodules for the API.
"""

FORMATS = ("table", "markdown", "json", "csv")
SITE_FORMAT = "html"  # a folder: the static website (site.py)
