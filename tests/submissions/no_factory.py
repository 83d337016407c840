from irob_bench.plugin import SubmissionMetadata

METADATA = SubmissionMetadata(name="no-factory", authors=["t"], datasets=["mnist"], training="none")
