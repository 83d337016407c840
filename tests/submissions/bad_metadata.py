METADATA = {"name": "bad metadata with spaces", "authors": [], "datasets": ["mnist"], "training": "none"}


def load_model():
    raise AssertionError("never called")
