from irob_bench.plugin import SubmissionMetadata

def load_model(:
    pass
