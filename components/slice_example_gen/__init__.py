"""Ingestion: kaggle_3m-layout folders of TIFF slices -> tf.train.Example TFRecords.

The component is TFX's FileBasedExampleGen with `executor.Executor`: splits
(by patient, via `partition_feature_name=case_id`), spans and caching come
from TFX.
"""
