"""CuratedSchema: imports `data_schema/schema.pbtxt` with its text in the cache key.

TFX's ImportSchemaGen takes the schema's *path* as its parameter, so a run
after an edit of the schema file reuses the previously imported schema from
the cache (found when a new feature was added: ExampleValidator then called
it a "New column"). This component takes the schema's text instead, and
writes it where ImportSchemaGen would (`<uri>/schema.pbtxt`). The pipeline
gives it the id `ImportSchemaGen`.
"""

import os

import tensorflow as tf
from tfx import v1 as tfx

SCHEMA_FILE = "schema.pbtxt"


@tfx.dsl.components.component
def CuratedSchema(  # noqa: N802
    schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
    schema_text: tfx.dsl.components.Parameter[str],
) -> None:
    with tf.io.gfile.GFile(os.path.join(schema.uri, SCHEMA_FILE), "w") as out:
        out.write(schema_text)
