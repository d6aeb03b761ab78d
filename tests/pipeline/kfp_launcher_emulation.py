"""Runs a compiled package node by node, the way each backend's launcher feeds a container.

This is the project's own, small emulation of the launcher contract, not a
cluster: every task's container command runs exactly as the compiled spec
states it, in a subprocess, with the `{{$}}` ExecutorInput built as the backend
builds it. It follows kubeflow/pipelines at `backend/src/v2/`:
- order: the DAG's `dependentTasks` and artifact producers;
- parameters (`driver/resolve.go`): `runtimeValue.constant` into
  `parameterValues` (the 2.0 form's `constantValue` is not read), component
  defaults added as `component/launcher_v2.go` (addDefaultParams) does;
- output artifacts (`driver/driver.go`, provisionOutputs): named by their
  output key, URI `<pipeline root>/<task>/<salt>/<key>`, the component's type
  and metadata; the ExecutorOutput file in the task root;
- after the container (`component/launcher_v2.go`, uploadOutputArtifacts): the
  ExecutorOutput's metadata merged into each output artifact, recorded in ML
  Metadata with `display_name` and `store_session_info` custom properties;
- input artifacts (`metadata/client.go`, GetOutputArtifactsByExecutionId +
  `metadata/converter.go`, toRuntimeArtifact): named by their numeric ML
  Metadata id, properties and custom properties as metadata, and an EMPTY type
  (`Schema: ""`);
- cache (`driver/cache.go`, `cacheutils/cache.go`): with `enableCache`, a task
  whose input artifact ids, parameters, image, command and args were seen
  before is not run, and its earlier outputs are reused.
For Vertex AI (documented behaviour, no public source): input artifacts keep
their type and carry resource names, the `lifecycle.preCacheCheck` hook runs
before the container with the same ExecutorInput, and resolver tasks answer
their `outputArtifactQueries` filter from the store (the subset of the filter
language TFX writes: schema_title, state, metadata.<key>.number_value, name).
"""

import copy
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time

TARGETS = ("kfp", "vertex")
VERTEX_NAME = "projects/emulated/locations/local/metadataStores/default/artifacts/{id}"


@dataclasses.dataclass
class Artifact:
    """One recorded artifact: what ML Metadata holds about it."""

    id: int
    name: str
    uri: str
    artifact_type: dict
    metadata: dict


@dataclasses.dataclass
class NodeRun:
    task: str
    state: str  # "complete", "cached" or "failed"
    outputs: dict[str, Artifact]
    seconds: float = 0.0
    log_tail: str = ""


def topological_order(spec: dict) -> list[str]:
    """Task names, each after every task it depends on (ties by name, for a stable order)."""
    tasks = spec["root"]["dag"]["tasks"]
    needs = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    for name, task in tasks.items():
        for value in task.get("inputs", {}).get("artifacts", {}).values():
            if "taskOutputArtifact" in value:
                needs[name].add(value["taskOutputArtifact"]["producerTask"])
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(name for name in tasks if name not in order and needs[name] <= set(order))
        if not ready:
            raise ValueError(f"the DAG has a cycle among {sorted(set(tasks) - set(order))}")
        order.append(ready[0])
    return order


class Launcher:
    """The backend's state across runs: ML Metadata's artifacts and the cache."""

    def __init__(self, target: str, python_bin_dir: str | None = None, timeout_s: int = 900):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = target
        self.artifacts: list[Artifact] = []
        self.cache: dict[str, dict[str, Artifact]] = {}
        self.python_bin_dir = python_bin_dir or os.path.dirname(sys.executable)
        self.timeout_s = timeout_s

    # ---- one run ---------------------------------------------------------------
    def run(self, spec: dict, pipeline_root: str, run_name: str, command_override: list[str] | None = None) -> dict[str, NodeRun]:
        """Run every task of `spec` in dependency order; stops at the first failed task (KFP skips its dependants).

        command_override: replace every container's command (e.g. TFX's own entrypoint), arguments unchanged.
        """
        runs: dict[str, NodeRun] = {}
        for name in topological_order(spec):
            runs[name] = self._run_task(spec, name, runs, pipeline_root, run_name, command_override)
            if runs[name].state == "failed":
                break
        return runs

    def _run_task(self, spec, name, runs, pipeline_root, run_name, command_override) -> NodeRun:
        task = spec["root"]["dag"]["tasks"][name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        inputs = self._input_artifacts(task, runs)
        if "resolver" in executor:
            if self.target == "kfp":
                raise ValueError(f"task {name}: the open-source backend does not run resolver executors")
            return NodeRun(name, "complete", self._resolve(executor["resolver"], component, inputs))
        container = executor["container"]
        command = command_override or container["command"]
        parameters = self._parameters(task, component)
        cache_key = self._cache_key(task, inputs, parameters, container, command)
        if cache_key in self.cache:
            return NodeRun(name, "cached", self.cache[cache_key])
        task_root = os.path.join(pipeline_root, name, run_name)
        outputs = self._provision_outputs(component, task_root)
        executor_input = {
            "inputs": {"parameterValues": parameters, "artifacts": {key: {"artifacts": [self._as_input(a)]} for key, a in inputs.items()}},
            "outputs": {"artifacts": {key: {"artifacts": [artifact]} for key, artifact in outputs.items()}, "outputFile": ""},
        }
        executor_input["outputs"]["outputFile"] = os.path.join(task_root, "output_metadata.json")
        started = time.monotonic()
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        steps = ([(hook["command"], hook.get("args", []))] if hook and self.target == "vertex" else []) + [(command, container["args"])]
        for artifact in outputs.values():  # an object store needs no folders; local paths do
            os.makedirs(artifact["uri"], exist_ok=True)
        for step_command, step_args in steps:
            result = self._execute(step_command, step_args, executor_input, task_root)
            if result.returncode != 0:
                return NodeRun(name, "failed", {}, time.monotonic() - started, result.stdout[-6000:])
        recorded = self._record_outputs(outputs, executor_input["outputs"]["outputFile"])
        if cache_key is not None:
            self.cache[cache_key] = recorded
        return NodeRun(name, "complete", recorded, time.monotonic() - started)

    # ---- inputs ------------------------------------------------------------------
    def _input_artifacts(self, task: dict, runs: dict[str, NodeRun]) -> dict[str, Artifact]:
        inputs = {}
        for key, value in task.get("inputs", {}).get("artifacts", {}).items():
            producer = value.get("taskOutputArtifact")
            if producer is None:
                raise ValueError(f"input {key!r}: only taskOutputArtifact inputs are emulated, got {value}")
            produced = runs[producer["producerTask"]].outputs.get(producer["outputArtifactKey"])
            if produced is not None:  # a resolver that matched nothing leaves the input absent
                inputs[key] = produced
        return inputs

    def _as_input(self, artifact: Artifact) -> dict:
        """An input RuntimeArtifact: on kfp untyped with its numeric id as name; on Vertex typed, by resource name."""
        if self.target == "kfp":
            return {"name": str(artifact.id), "uri": artifact.uri, "type": {"instanceSchema": ""}, "metadata": artifact.metadata}
        return {"name": artifact.name, "uri": artifact.uri, "type": artifact.artifact_type, "metadata": artifact.metadata}

    @staticmethod
    def _parameters(task: dict, component: dict) -> dict:
        values = {}
        for key, value in task.get("inputs", {}).get("parameters", {}).items():
            if "constant" not in value.get("runtimeValue", {}):
                raise ValueError(f"parameter {key!r}: only runtimeValue.constant is read by the driver, got {value}")
            values[key] = value["runtimeValue"]["constant"]
        for key, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if key not in values and "defaultValue" in definition:
                values[key] = definition["defaultValue"]
        return values

    def _cache_key(self, task, inputs, parameters, container, command) -> str | None:
        if self.target != "kfp" or not task.get("cachingOptions", {}).get("enableCache"):
            return None
        key = {
            "inputArtifactIds": {k: a.id for k, a in inputs.items()},
            "parameters": parameters,
            "image": container["image"],
            "cmdArgs": list(command) + list(container["args"]),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    # ---- outputs -----------------------------------------------------------------
    def _provision_outputs(self, component: dict, task_root: str) -> dict[str, dict]:
        outputs = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            artifact_id = len(self.artifacts) + len(outputs) + 1
            name = key if self.target == "kfp" else VERTEX_NAME.format(id=artifact_id)
            outputs[key] = {
                "name": name,
                "uri": os.path.join(task_root, key),
                "type": definition["artifactType"],
                "metadata": copy.deepcopy(definition.get("metadata", {})),
            }
        return outputs

    def _record_outputs(self, outputs: dict[str, dict], output_file: str) -> dict[str, Artifact]:
        """Merge the ExecutorOutput's artifact metadata into the outputs and record them (ids in order)."""
        executor_output = {}
        if os.path.exists(output_file):
            with open(output_file) as source:
                executor_output = json.load(source).get("artifacts", {})
        recorded = {}
        for key, artifact in outputs.items():
            reported = (executor_output.get(key, {}).get("artifacts") or [{}])[0]
            metadata = {**artifact["metadata"], **reported.get("metadata", {})}
            if self.target == "kfp":  # RecordArtifact's custom properties
                metadata.setdefault("display_name", key)
                metadata.setdefault("store_session_info", json.dumps({"Provider": "local"}))
            entry = Artifact(len(self.artifacts) + 1, artifact["name"], reported.get("uri") or artifact["uri"], artifact["type"], metadata)
            if self.target == "vertex":
                entry.name = VERTEX_NAME.format(id=entry.id)
            self.artifacts.append(entry)
            recorded[key] = entry
        return recorded

    # ---- the container -----------------------------------------------------------
    def _execute(self, command: list[str], args: list[str], executor_input: dict, task_root: str) -> subprocess.CompletedProcess:
        serialized = json.dumps(executor_input)
        argv = [item.replace("{{$}}", serialized) for item in list(command) + list(args)]
        leftover = [item for item in argv if "{{$" in item]
        if leftover:
            raise ValueError(f"placeholders this emulation does not fill: {leftover[0][:120]}")
        os.makedirs(task_root, exist_ok=True)
        env = dict(os.environ, PATH=self.python_bin_dir + os.pathsep + os.environ.get("PATH", ""))
        return subprocess.run(
            argv, cwd=task_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=self.timeout_s
        )

    # ---- Vertex resolvers --------------------------------------------------------
    def _resolve(self, resolver: dict, component: dict, inputs: dict[str, Artifact]) -> dict[str, Artifact]:
        outputs = {}
        for key, query in resolver["outputArtifactQueries"].items():
            matches = [artifact for artifact in self.artifacts if _matches(query["filter"], artifact, inputs)]
            if matches:
                outputs[key] = matches[-1]  # the latest
        return outputs


_CLAUSE = re.compile(r"^(schema_title|name|state|metadata\.(\w+)\.number_value)=(.+)$")
_INPUT_METADATA = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")


def _matches(query: str, artifact: Artifact, inputs: dict[str, Artifact]) -> bool:
    """The subset of Vertex's artifact filter that TFX's resolver compiles to (AND of equalities)."""
    for clause in query.split(" AND "):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise ValueError(f"resolver filter clause this emulation does not read: {clause!r}")
        field, metadata_key, expected = match.group(1), match.group(2), match.group(3).strip('"')
        placeholder = _INPUT_METADATA.fullmatch(expected)
        if placeholder:
            source = inputs.get(placeholder.group(1))
            if source is None:
                return False
            expected = str(source.metadata.get(placeholder.group(2), ""))
        title = re.search(r"title: (\S+)", artifact.artifact_type.get("instanceSchema", "")) or None
        actual = {
            "schema_title": artifact.artifact_type.get("schemaTitle") or (title.group(1) if title else ""),
            "name": artifact.name,
            "state": "LIVE",
        }.get(field)
        if metadata_key is not None:
            value = artifact.metadata.get(metadata_key)
            if value is None or float(value) != float(expected):
                return False
        elif actual != expected:
            return False
    return True
