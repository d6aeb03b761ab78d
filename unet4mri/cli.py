"""The `unet4mri` command: a thin parser over the library functions.

Every subcommand is a function the tests call directly; errors a user can act
on (bad path, bad data, not a model) print one line and exit with status 2.
"""

import argparse
import json
import os
import shlex
import sys

from core.contracts import INFO_POSTPROCESSING, INFO_POSTPROCESSING_CHOICE
from core.synthetic_data import FAMILIES
from core.volumes import VolumeLayout
from models.config import TrainingConfig
from pipeline.config import PipelineConfig
from unet4mri import quiet
from unet4mri.config_options import add_options, config_from_args

DEFAULT_DATA_DIR = "data/synthetic"
DEFAULT_OUTPUT_DIR = "output"
_POSTPROCESSING_KEYS = (INFO_POSTPROCESSING, INFO_POSTPROCESSING_CHOICE)


def _pipeline_config(args: argparse.Namespace, local: bool) -> PipelineConfig:
    def where(path: str) -> str:
        return os.path.abspath(path) if local or "://" not in path else path

    beam_args = tuple(shlex.split(args.beam_args)) if getattr(args, "beam_args", None) else PipelineConfig.beam_pipeline_args
    return config_from_args(
        PipelineConfig, args, data_dir=where(args.data_dir), output_dir=where(args.output_dir), beam_pipeline_args=beam_args
    )


def command_generate_data(args: argparse.Namespace) -> int:
    from core.synthetic_data import generate_dataset, generate_volume_dataset

    generate = generate_volume_dataset if args.format == "nifti" else generate_dataset
    ids = generate(args.out, args.patients, args.slices, args.seed, args.image_size, family=args.family)
    size = f"{args.image_size}x{args.image_size}"
    print(f"wrote {len(ids)} patients x {args.slices} slices ({size}, {args.format}, {args.family} family) to {args.out}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    from pipeline.local_runner import run_local
    from pipeline.run_summary import format_summary

    config = _pipeline_config(args, local=True)
    if not os.path.isdir(config.data_dir):
        raise FileNotFoundError(f"data folder not found: {config.data_dir}")
    summary = run_local(config)
    print(format_summary(summary))
    if not args.no_report:
        from unet4mri.report import build_report

        print(f"Report: {build_report(config.output_dir, pipeline_name=config.pipeline_name)}")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    from unet4mri.predict import predict_folder
    from unet4mri.volume_prediction import is_volume_input, predict_volumes

    layout = config_from_args(VolumeLayout, args)
    if is_volume_input(args.input, layout):
        cases = predict_volumes(args.model, args.input, args.output, args.threshold, args.batch_size, args.tta, layout)
        failed = [case for case in cases if case.error]
        print(
            f"predicted {len(cases) - len(failed)} cases; masks (*_pred_seg.nii.gz), overlays and cases.csv in {args.output}"
            f"{_postprocessing_line(cases)}"
        )
        for case in failed:
            print(f"unet4mri: error: {case.error}", file=sys.stderr)
        return 2 if failed else 0
    results = predict_folder(args.model, args.input, args.output, args.threshold, args.batch_size, tta=args.tta, pixel_mm=args.pixel_mm)
    cases = {row.case_id for row in results}
    with_tumor = sum(row.pred_pixels > 0 for row in results)
    print(
        f"predicted {len(results)} slices of {len(cases)} cases ({with_tumor} with tumor); masks, overlays, "
        f"slices.csv and cases.csv in {args.output}{_postprocessing_line(results)}"
    )
    return 0


def _postprocessing_line(rows: list) -> str:
    """'; post-processing: <steps>' of the predicted rows (they all share it), or '' when none was predicted."""
    from core.postprocessing import PostProcessing

    done = [row for row in rows if row.threshold is not None]
    return f"; post-processing: {PostProcessing(done[0].threshold, done[0].min_component_pixels).describe()}" if done else ""


def command_report(args: argparse.Namespace) -> int:
    from unet4mri.report import build_report

    print(f"Report: {build_report(args.run_dir, args.output)}")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    from core.volumes import has_volumes
    from unet4mri import evaluate

    layout = config_from_args(VolumeLayout, args)
    if os.path.isdir(args.data_dir) and has_volumes(args.data_dir, layout):
        result = evaluate.evaluate_volumes(args.model, args.data_dir, args.batch_size, args.tta, layout)
        rows = f"{len(result['patients'])} patients"
    else:
        result = evaluate.evaluate_model(args.model, args.data_dir, args.batch_size, tta=args.tta)
        rows = f"{len(result['slices'])} slices"
    evaluate.write_json(result, args.output)
    overall = {key: value for key, value in result.items() if key not in ("by_size", "slices", "patients", *_POSTPROCESSING_KEYS)}
    print(json.dumps(overall, indent=2))
    print(_postprocessing_report(result))
    print(f"wrote {args.output} ({rows})")
    return 0


def _postprocessing_report(result: dict) -> str:
    """The post-processing of the evaluated masks and, when the trainer chose it, its eval-patient figures before/after."""
    from core.postprocessing import CRITERION, PostProcessing

    lines = [f"post-processing applied: {PostProcessing.from_dict(result[INFO_POSTPROCESSING]).describe()}"]
    choice = result.get(INFO_POSTPROCESSING_CHOICE)
    if choice:
        before, after = choice["before"][CRITERION], choice["after"][CRITERION]
        lines.append(f"chosen on the eval patients: {CRITERION} {_number(before)} with the default, {_number(after)} with it")
    else:
        lines.append("(not chosen at training: the default, or a model exported before post-processing)")
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def command_compile(args: argparse.Namespace) -> int:
    from pipeline.kfp_package import GpuScheduling
    from pipeline.kubeflow_runner import ClusterOptions, compile_pipeline

    scheduling = GpuScheduling(tuple(args.gpu_toleration), tuple(args.gpu_node_selector))
    options = ClusterOptions(args.image, args.trainer_image, args.gpus, args.gpu_type, args.cpu, args.memory, scheduling)
    compile_pipeline(_pipeline_config(args, local=False), args.target, args.output, options, args.pipeline_root)
    print(f"wrote {args.target} package {args.output}")
    return 0


def command_schedule(args: argparse.Namespace) -> int:
    from pipeline import schedule

    if args.target == "kfp":
        if not args.host:
            raise ValueError("--host is required for --target kfp")
        job = schedule.submit_kfp(schedule.KfpSchedule(args.package, args.cron, args.name), args.host)
        print(describe_rerun_plan(args.package))
    else:
        if not (args.project and args.region):
            raise ValueError("--project and --region are required for --target vertex")
        job = schedule.submit_vertex(schedule.VertexSchedule(args.package, args.cron, args.project, args.region, args.name))
    print(f"scheduled {args.name}: {job}")
    return 0


def describe_rerun_plan(package: str) -> str:
    from pipeline.kubeflow_runner import load_job
    from pipeline.schedule import rerun_plan

    plan = rerun_plan(load_job(package))
    return "\n".join(f"{when}: {', '.join(tasks) or '-'}" for when, tasks in plan.items())


def command_build_model(args: argparse.Namespace) -> int:
    from models import networks
    from models.trainer_module import load_weights_from

    config = config_from_args(TrainingConfig, args)
    model = networks.build_model(config)
    if args.weights:
        if os.path.isdir(args.weights):
            load_weights_from(model, args.weights)
        else:
            model.load_weights(args.weights)
    if args.summary:
        model.summary(print_fn=lambda line, **_: print(line))
    print(
        f"{config.model}: {model.count_params():,} parameters "
        f"(n_filters={config.n_filters}, depth={config.depth}, batch size {config.batch_size})"
    )
    return 0


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a SavedModel, or a serving_model folder (its newest version)")
    parser.add_argument("--batch-size", type=int, default=16, help="slices per call of the model (default: %(default)s)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: mean of 4 flips (about 4x the time)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unet4mri", description="Brain-MRI tumor segmentation with a TFX pipeline.")
    parser.add_argument("--verbose", action="store_true", help="show the stack's logs, warnings and tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate-data", help="write a synthetic dataset in the kaggle_3m layout")
    generate.add_argument("--out", required=True, help="output folder")
    generate.add_argument("--patients", type=int, default=40, help="(default: %(default)s)")
    generate.add_argument("--slices", type=int, default=20, help="slices per patient (default: %(default)s)")
    generate.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    generate.add_argument("--image-size", type=int, default=256, help="(default: %(default)s)")
    generate.add_argument(
        "--format",
        choices=("tiff", "nifti"),
        default="tiff",
        help="kaggle_3m TIFF slices or BraTS-style NIfTI cases (default: %(default)s)",
    )
    generate.add_argument(
        "--family",
        choices=tuple(FAMILIES),
        default="default",
        help="default: the data the team tunes on (skull-stripped); heads: the same patients, every second one with a "
        "head around the brain (skull, scalp, skull base); varied: the heads patients with lesions of varied number, place, "
        "size, edge and contrast; unseen: other head anatomy, lesion model and scanner, "
        "for a generalization measure reported once and never tuned on (docs/data.md) (default: %(default)s)",
    )
    generate.set_defaults(handler=command_generate_data)

    run = commands.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
    run.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR, help="kaggle_3m TIFF slices or BraTS-style case folders (default: %(default)s)"
    )
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="artifacts, metadata and pushed models (default: %(default)s)")
    run.add_argument("--no-report", action="store_true", help="do not write OUTPUT_DIR/report.html")
    add_options(run, PipelineConfig, "pipeline")
    run.set_defaults(handler=command_run)

    evaluate = commands.add_parser("evaluate", help="metrics of a pushed model on TIFF slices or labelled volumes")
    _model_options(evaluate)
    evaluate.add_argument("--data-dir", required=True, help="slices in the kaggle_3m layout, or BraTS-style case folders with labels")
    evaluate.add_argument("--output", required=True, help="JSON file to write")
    add_options(evaluate, VolumeLayout, "volumes")
    evaluate.set_defaults(handler=command_evaluate)

    predict = commands.add_parser("predict", help="segment new slices: masks, overlays and CSV summaries")
    _model_options(predict)
    predict.add_argument(
        "--input",
        required=True,
        help="one slice (TIFF/PNG), a case folder or a kaggle_3m-layout root; or a case's NIfTI file, "
        "a BraTS-style case folder (NIfTI files or DICOM series folders) or a root of them",
    )
    predict.add_argument("--output", required=True, help="folder for the results")
    predict.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability above which a pixel is tumor, instead of the model's own (chosen at training); "
        "its other post-processing steps are kept (default: the model's)",
    )
    predict.add_argument(
        "--pixel-mm", type=float, default=None, help="TIFF/PNG input: pixel side in mm, to report tumor areas in mm² (volumes know theirs)"
    )
    add_options(predict, VolumeLayout, "volumes")
    predict.set_defaults(handler=command_predict)

    report = commands.add_parser("report", help="write a self-contained HTML report of a run")
    report.add_argument("--run-dir", required=True, help="the --output-dir of `unet4mri run`")
    report.add_argument("--output", default=None, help="HTML file (default: RUN_DIR/report.html)")
    report.set_defaults(handler=command_report)

    compile_ = commands.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines or Vertex AI")
    compile_.add_argument("--target", choices=("kfp", "vertex"), required=True)
    compile_.add_argument("--output", required=True, help="package: .yaml for kfp, .json for vertex")
    compile_.add_argument("--image", required=True, help="pipeline image for every component (see Dockerfile)")
    compile_.add_argument("--trainer-image", default=None, help="GPU image for the Trainer (default: --image)")
    compile_.add_argument("--gpus", type=int, default=0, help="GPUs for the Trainer (default: %(default)s)")
    compile_.add_argument(
        "--gpu-type", default=None, help="kfp: resource name (default nvidia.com/gpu); vertex: e.g. NVIDIA_TESLA_T4 (default)"
    )
    compile_.add_argument("--cpu", type=float, default=None, help="CPU cores for the Trainer")
    compile_.add_argument("--memory", type=float, default=None, help="memory (GiB) for the Trainer")
    compile_.add_argument(
        "--gpu-toleration", action="append", default=[], metavar="KEY[=VALUE][:EFFECT]", help="kfp: a toleration for the Trainer's pod"
    )
    compile_.add_argument("--gpu-node-selector", action="append", default=[], metavar="KEY=VALUE", help="kfp: a node label for the Trainer")
    compile_.add_argument("--pipeline-root", default=None, help="gs:// or s3:// root of the artifacts (default: OUTPUT_DIR/tfx)")
    compile_.add_argument(
        "--beam-args", default=None, help="Beam options for the data components, e.g. '--runner=DataflowRunner --project=P'"
    )
    compile_.add_argument("--data-dir", required=True, help="data root on the cluster (e.g. gs://bucket/lgg)")
    compile_.add_argument(
        "--output-dir", required=True, help="run root on the cluster: OUTPUT/tfx is the pipeline root, OUTPUT/serving_model the push target"
    )
    add_options(compile_, PipelineConfig, "pipeline")
    compile_.set_defaults(handler=command_compile)

    schedule_ = commands.add_parser("schedule", help="create a recurring run of a compiled package")
    schedule_.add_argument("--target", choices=("kfp", "vertex"), required=True)
    schedule_.add_argument("--package", required=True, help="the output of `unet4mri compile`")
    schedule_.add_argument("--cron", required=True, help="kfp: 6 fields, seconds first ('0 0 3 * * 0'); vertex: 5 fields ('0 3 * * 0')")
    schedule_.add_argument("--host", default=None, help="kfp: the KFP API endpoint")
    schedule_.add_argument("--project", default=None, help="vertex: Google Cloud project")
    schedule_.add_argument("--region", default=None, help="vertex: region, e.g. us-central1")
    schedule_.add_argument("--name", default="unet4mri-retraining", help="(default: %(default)s)")
    schedule_.set_defaults(handler=command_schedule)

    reference = commands.add_parser("reference", help="print this command's reference (docs/cli.md)")
    reference.set_defaults(handler=command_reference)

    build = commands.add_parser("build-model", help="build a network and print its size")
    build.add_argument("--weights", default=None, help="a .weights.h5 file or a pushed SavedModel to load")
    build.add_argument("--summary", action="store_true", help="print the layer summary")
    add_options(build, TrainingConfig, "training")
    build.set_defaults(handler=command_build_model)
    return parser


REFERENCE_BEGIN = "<!-- cli-reference: generated by `unet4mri reference`; a test keeps it in sync -->"
REFERENCE_END = "<!-- end of cli-reference -->"


def cli_reference() -> str:
    """The help of every subcommand, as the Markdown block that docs/cli.md carries."""
    parser = build_parser()
    blocks = [REFERENCE_BEGIN]
    subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, subparser in subcommands.choices.items():
        subparser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        blocks.append(f"### unet4mri {name}\n\n```\n{subparser.format_help().rstrip()}\n```")
    blocks.append(REFERENCE_END)
    return "\n\n".join(blocks)


def command_reference(args: argparse.Namespace) -> int:
    print(cli_reference())
    return 0


def _user_errors() -> tuple[type[Exception], ...]:
    from components.anomalies_gate import DataValidationError
    from components.positive_pixel_weight.executor import EmptyClassError
    from components.slice_example_gen.executor import IngestionError
    from core.slices import SliceError
    from pipeline.run_lock import RunLockedError
    from pipeline.schedule import KfpHostError
    from unet4mri.served_model import ModelError

    return (
        SliceError,
        ModelError,
        IngestionError,
        DataValidationError,
        EmptyClassError,
        RunLockedError,
        KfpHostError,
        FileNotFoundError,
        ValueError,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet.configure(args.verbose)
    try:
        return args.handler(args)
    except _user_errors() as error:
        if args.verbose:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"unet4mri: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
