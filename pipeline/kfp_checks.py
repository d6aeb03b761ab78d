"""Static checks of a compiled PipelineSpec against what each backend runs.

One line per problem; `compile_pipeline` refuses to write a package with any,
and the tests run them on every compiled package. The rules and where they
come from are in `pipeline.kfp_package`.
"""

from pipeline import kfp_entrypoint
from pipeline.kfp_package import SCHEMA_VERSION


def tasks(spec: dict) -> dict:
    return spec["root"]["dag"]["tasks"]


def _walk(value, path: str = ""):
    """(path, key) of every mapping key in a nested JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def version_problems(spec: dict) -> list[str]:
    problems = []
    if spec.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"schemaVersion is {spec.get('schemaVersion')!r}, the KFP API server accepts {SCHEMA_VERSION} only")
    legacy = [path for path, key in _walk(spec) if key == "constantValue"]
    problems += [f"{path}: constantValue is not read by the open-source driver (use constant)" for path in legacy]
    return problems


def reference_problems(spec: dict) -> list[str]:
    """Every component, executor, producer task, output key and declared input a task names exists."""
    problems = []
    components, executors = spec["components"], spec["deploymentSpec"]["executors"]
    for name, task in tasks(spec).items():
        component = components.get(task["componentRef"]["name"])
        if component is None:
            problems.append(f"task {name}: component {task['componentRef']['name']!r} is not defined")
            continue
        if component.get("executorLabel") not in executors:
            problems.append(f"task {name}: executor {component.get('executorLabel')!r} is not defined")
        unknown = [other for other in task.get("dependentTasks", []) if other not in tasks(spec)]
        problems += [f"task {name}: depends on unknown task {other!r}" for other in unknown]
        declared = component.get("inputDefinitions", {})
        for kind in ("artifacts", "parameters"):
            for key, value in task.get("inputs", {}).get(kind, {}).items():
                if key not in declared.get(kind, {}):
                    problems.append(f"task {name}: input {kind[:-1]} {key!r} is not declared by its component")
                producer = value.get("taskOutputArtifact")
                if producer and not _produces(spec, producer["producerTask"], producer["outputArtifactKey"]):
                    source = f"{producer['producerTask']}.{producer['outputArtifactKey']}"
                    problems.append(f"task {name}: input {key!r} names {source}, which does not exist")
    return problems


def _produces(spec: dict, task: str, key: str) -> bool:
    if task not in tasks(spec):
        return False
    component = spec["components"][tasks(spec)[task]["componentRef"]["name"]]
    return key in component.get("outputDefinitions", {}).get("artifacts", {})


def executor_problems(spec: dict, target: str) -> list[str]:
    """Containers run our entrypoint; open-source KFP gets no resolver; GPU types fit the backend."""
    problems = []
    for label, executor in spec["deploymentSpec"]["executors"].items():
        if "resolver" in executor or "importer" in executor:
            if target == "kfp":
                problems.append(f"executor {label}: resolver/importer executors are not implemented by the open-source KFP compiler")
            continue
        container = executor["container"]
        if container.get("command", [])[-1:] != [kfp_entrypoint.MODULE]:
            problems.append(f"executor {label}: command {container.get('command')} does not run {kfp_entrypoint.MODULE}")
        accelerator = container.get("resources", {}).get("accelerator", {}).get("type")
        if accelerator and (target == "kfp") != ("/" in accelerator):  # a Kubernetes resource name on kfp
            problems.append(f"executor {label}: accelerator type {accelerator!r} does not suit {target}")
    return problems


def spec_problems(spec: dict, target: str) -> list[str]:
    """All static problems of `spec` for `target` ('kfp' or 'vertex'); empty when it is fit to run."""
    problems = version_problems(spec) + reference_problems(spec) + executor_problems(spec, target)
    if not spec.get("defaultPipelineRoot"):
        problems.append("no defaultPipelineRoot: the open-source backend would use its minio:// default")
    return problems
