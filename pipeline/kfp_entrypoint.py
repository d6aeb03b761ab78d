"""The container entrypoint of every node in the compiled Kubeflow packages.

`python -m pipeline.kfp_entrypoint` takes the arguments of TFX's
`kubeflow_v2_run_executor` (the compiled spec passes the same ones) and runs
TFX's executor after filling in what the open-source KFP 2.x launcher leaves
out. Vertex AI Pipelines passes all of it already, and there nothing changes.

What the open-source backend does differently (kubeflow/pipelines, backend/src/v2):
- Input artifacts come without a type: the driver reads upstream outputs back
  from ML Metadata and `metadata/client.go` (GetOutputArtifactsByExecutionId)
  sets `Schema: ""`, which `ToRuntimeArtifact` writes as an empty
  `instanceSchema`. TFX reads the artifact class from that schema and fails
  (`_retrieve_class_path`: "'NoneType' object has no attribute 'get'"). The
  compiled container's own `--json_serialized_inputs_spec_args` names each
  input's type, so the empty ones are filled from there.
- The `lifecycle.preCacheCheck` hook is never run (`driver/` has no such
  step), so FileBasedExampleGen's span/version resolution, which TFX puts in
  that hook, would not happen: `{SPAN}` would reach the executor unresolved.
  When the hook has not written the task's ExecutorOutput file, the same TFX
  driver function runs here first, as Vertex runs it before the executor.
- Artifact URIs are `s3://` where the pipeline root is: TensorFlow reads them
  through tensorflow-io's file-system plug-in, loaded here (see the Dockerfile).

On both backends a Trainer asked for `deterministic` training gets TensorFlow
on one thread here, before anything in its process runs an operation
(models.determinism).

No installed package is patched: this module only prepares the ExecutorInput.
"""

import argparse
import json
import sys

from absl import app
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.io import fileio
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor
from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver as example_gen_driver
from tfx.utils import import_utils

from models import determinism

MODULE = "pipeline.kfp_entrypoint"
TFX_MODULE = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


def parse_executor_input(serialized: str) -> pipeline_spec_pb2.ExecutorInput:
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(serialized, executor_input, ignore_unknown_fields=True)
    return executor_input


def parse_inputs_spec(serialized: str | None) -> pipeline_spec_pb2.ComponentInputsSpec:
    inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
    if serialized:
        json_format.Parse(serialized, inputs_spec, ignore_unknown_fields=True)
    return inputs_spec


def is_untyped(artifact: pipeline_spec_pb2.RuntimeArtifact) -> bool:
    """True for the open-source launcher's inputs: no schema title and an empty (or absent) instance schema."""
    kind = artifact.type.WhichOneof("kind")
    return kind is None or (kind == "instance_schema" and not artifact.type.instance_schema.strip())


def fill_input_types(executor_input: pipeline_spec_pb2.ExecutorInput, inputs_spec: pipeline_spec_pb2.ComponentInputsSpec) -> list[str]:
    """Give every untyped input artifact the type its component declares; returns the keys filled.

    Raises ValueError for an untyped input that the component does not declare
    (its class cannot be known, and TFX would fail later with a less clear error).
    """
    filled = []
    for key, artifact_list in executor_input.inputs.artifacts.items():
        untyped = [artifact for artifact in artifact_list.artifacts if is_untyped(artifact)]
        if not untyped:
            continue
        if key not in inputs_spec.artifacts:
            raise ValueError(f"input artifact {key!r} has no type and the component's inputs spec does not declare it")
        for artifact in untyped:
            artifact.type.CopyFrom(inputs_spec.artifacts[key].artifact_type)
        filled.append(key)
    return filled


def needs_span_resolution(executor_class_path: str, executor_input: pipeline_spec_pb2.ExecutorInput) -> bool:
    """An ExampleGen whose preCacheCheck hook has not run (no ExecutorOutput file yet): resolve spans here."""
    executor_class = import_utils.import_class_by_path(executor_class_path)
    if not issubclass(executor_class, base_example_gen_executor.BaseExampleGenExecutor):
        return False
    if "input_base" not in executor_input.inputs.parameter_values:
        return False  # not file based
    return not fileio.exists(executor_input.outputs.output_file)


def load_filesystem_plugins(executor_input: pipeline_spec_pb2.ExecutorInput) -> None:
    """s3:// needs tensorflow-io's plug-in registered in this process (gs:// is built into TensorFlow)."""
    lists = list(executor_input.inputs.artifacts.values()) + list(executor_input.outputs.artifacts.values())
    uris = [artifact.uri for artifact_list in lists for artifact in artifact_list.artifacts]
    if any(uri.startswith("s3://") for uri in uris):
        import tensorflow_io  # noqa: F401  (registers s3://)


def merge_driver_outputs(executor_input: pipeline_spec_pb2.ExecutorInput) -> None:
    """Carry the driver's output-artifact metadata (span, version, fingerprint) into the outputs the executor gets.

    TFX's runner reads back only the driver's parameters; without this the
    Examples artifact would not record which span it holds.
    """
    if not fileio.exists(executor_input.outputs.output_file):
        return
    driver_output = pipeline_spec_pb2.ExecutorOutput()
    with fileio.open(executor_input.outputs.output_file, "rb") as source:
        json_format.Parse(source.read(), driver_output, ignore_unknown_fields=True)
    for key, reported in driver_output.artifacts.items():
        if key in executor_input.outputs.artifacts and reported.artifacts:
            for artifact in executor_input.outputs.artifacts[key].artifacts:
                for name, value in reported.artifacts[0].metadata.fields.items():
                    if name not in artifact.metadata.fields:
                        artifact.metadata.fields[name].CopyFrom(value)


def wants_deterministic_training(executor_input: pipeline_spec_pb2.ExecutorInput) -> bool:
    """True for a Trainer whose training configuration (in its `custom_config` parameter) sets `deterministic`."""
    custom_config = executor_input.inputs.parameter_values.get("custom_config")
    if custom_config is None or not custom_config.string_value:
        return False
    training = (json.loads(custom_config.string_value) or {}).get("training") or {}  # other components' may be "null"
    return bool(training.get("deterministic", False))


def prepare(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in what the launcher left out; returns the arguments TFX's executor runner takes."""
    executor_input = parse_executor_input(args.json_serialized_invocation_args)
    inputs_spec = parse_inputs_spec(getattr(args, "json_serialized_inputs_spec_args", None))
    fill_input_types(executor_input, inputs_spec)
    load_filesystem_plugins(executor_input)
    if needs_span_resolution(args.executor_class_path, executor_input):
        # Writes the ExecutorOutput file that TFX's runner reads back as updated exec properties.
        example_gen_driver._run_driver(executor_input, inputs_spec)
    merge_driver_outputs(executor_input)
    prepared = argparse.Namespace(**vars(args))
    prepared.json_serialized_invocation_args = json_format.MessageToJson(executor_input)
    return prepared


def main(parsed: tuple[argparse.Namespace, list[str]]) -> None:
    args, beam_args = parsed
    if wants_deterministic_training(parse_executor_input(args.json_serialized_invocation_args)):
        determinism.use_one_thread()
    kubeflow_v2_run_executor._run_executor(prepare(args), beam_args)


if __name__ == "__main__":
    app.run(main, argv=sys.argv, flags_parser=kubeflow_v2_run_executor._parse_flags)
