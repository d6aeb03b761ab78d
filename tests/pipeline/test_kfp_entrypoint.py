"""The container entrypoint's preparation of an ExecutorInput, on hand-written inputs (no subprocess)."""

import argparse
import json

import pytest
from google.protobuf import json_format

from pipeline import kfp_entrypoint

EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"
INPUTS_SPEC = json.dumps({"artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}}})


def executor_input(input_type: dict, output_file: str = "/nonexistent/output_metadata.json"):
    """An ExecutorInput as the open-source launcher builds it: the input named by its numeric ML Metadata id."""
    artifact = {"name": "17", "uri": "s3://bucket/examples", "type": input_type, "metadata": {"span": 1.0}}
    return kfp_entrypoint.parse_executor_input(
        json.dumps({"inputs": {"artifacts": {"examples": {"artifacts": [artifact]}}}, "outputs": {"outputFile": output_file}})
    )


def test_untyped_inputs_get_the_type_their_component_declares():
    prepared = executor_input({"instanceSchema": ""})
    assert kfp_entrypoint.fill_input_types(prepared, kfp_entrypoint.parse_inputs_spec(INPUTS_SPEC)) == ["examples"]
    assert prepared.inputs.artifacts["examples"].artifacts[0].type.instance_schema == EXAMPLES_SCHEMA


def test_typed_inputs_are_left_as_vertex_sent_them():
    prepared = executor_input({"schemaTitle": "tfx.Examples"})
    assert kfp_entrypoint.fill_input_types(prepared, kfp_entrypoint.parse_inputs_spec(INPUTS_SPEC)) == []
    assert prepared.inputs.artifacts["examples"].artifacts[0].type.schema_title == "tfx.Examples"


def test_an_untyped_input_the_component_does_not_declare_is_refused():
    with pytest.raises(ValueError, match="input artifact 'examples' has no type"):
        kfp_entrypoint.fill_input_types(executor_input({}), kfp_entrypoint.parse_inputs_spec(None))


def test_the_driver_outputs_span_reaches_the_examples_the_executor_writes(tmp_path):
    output_file = tmp_path / "output_metadata.json"
    output_file.write_text(json.dumps({"artifacts": {"examples": {"artifacts": [{"metadata": {"span": 2.0, "version": 0.0}}]}}}))
    outputs = {"examples": {"artifacts": [{"name": "examples", "uri": "s3://b/e"}]}}
    prepared = kfp_entrypoint.parse_executor_input(json.dumps({"outputs": {"artifacts": outputs, "outputFile": str(output_file)}}))
    kfp_entrypoint.merge_driver_outputs(prepared)
    metadata = json_format.MessageToDict(prepared.outputs.artifacts["examples"].artifacts[0].metadata)
    assert metadata == {"span": 2.0, "version": 0.0}


def test_a_trainer_asked_for_deterministic_training_is_recognized():
    def with_custom_config(training: dict):
        custom_config = json.dumps({"training": training, "model_code": "abc"})
        return kfp_entrypoint.parse_executor_input(json.dumps({"inputs": {"parameterValues": {"custom_config": custom_config}}}))

    assert kfp_entrypoint.wants_deterministic_training(with_custom_config({"seed": 0, "deterministic": True}))
    assert not kfp_entrypoint.wants_deterministic_training(with_custom_config({"seed": 0, "deterministic": False}))
    assert not kfp_entrypoint.wants_deterministic_training(executor_input({"schemaTitle": "tfx.Examples"}))  # no custom_config
    null = kfp_entrypoint.parse_executor_input(json.dumps({"inputs": {"parameterValues": {"custom_config": "null"}}}))
    assert not kfp_entrypoint.wants_deterministic_training(null)  # the Pusher's, for one


def test_a_deterministic_trainer_gets_one_thread_before_the_executor_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(kfp_entrypoint.determinism, "use_one_thread", lambda: calls.append("one thread"))
    monkeypatch.setattr(kfp_entrypoint, "prepare", lambda args: args)
    monkeypatch.setattr(kfp_entrypoint.kubeflow_v2_run_executor, "_run_executor", lambda args, beam_args: calls.append("executor"))
    for deterministic, expected in ((True, ["one thread", "executor"]), (False, ["executor"])):
        calls.clear()
        custom_config = json.dumps({"training": {"deterministic": deterministic}})
        invocation = json.dumps({"inputs": {"parameterValues": {"custom_config": custom_config}}})
        kfp_entrypoint.main((argparse.Namespace(json_serialized_invocation_args=invocation), []))
        assert calls == expected
