"""The data contract: feature names, tumor-size buckets and the curated schema."""
