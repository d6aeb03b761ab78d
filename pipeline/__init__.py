"""The pipeline, defined once (`create_pipeline`), and its runners."""
