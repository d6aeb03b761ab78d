"""`make bench`: the benchmark suite, each measurement against its baseline in the same run.

    python -m benchmarks.run_all [--scale small|full] [--only ingestion,input_pipeline,training,inference,pipeline]

`small` runs in minutes on a 2-core machine; `full` sizes are for a GPU node.
Results: a JSON file (default output/bench/results.json) and a Markdown table
on stdout (the performance section of docs/results.md is one such table).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import common  # noqa: E402

SCALES = {
    "small": {
        "ingestion": {"patients": [10, 20], "slices_per_patient": 20},
        "input_pipeline": {"patients": 10, "image_size": 256, "batch_size": 8, "batches": 40, "train_steps": 3},
        "training": {"models": ["unet", "unetpp"], "image_size": 128, "batch_size": 8, "steps": 5, "n_filters": 16},
        "inference": {"image_size": 128, "batch_sizes": [1, 8, 32], "repeats": 5, "n_filters": 16},
        "pipeline": {"patients": 6, "slices_per_patient": 10},
    },
    "full": {
        "ingestion": {"patients": [40, 110], "slices_per_patient": 36},
        "input_pipeline": {"patients": 40, "image_size": 256, "batch_size": 32, "batches": 200, "train_steps": 20},
        "training": {"models": ["unet", "unetpp"], "image_size": 256, "batch_size": 32, "steps": 20, "n_filters": 32},
        "inference": {"image_size": 256, "batch_sizes": [1, 8, 32], "repeats": 20, "n_filters": 32},
        "pipeline": {"patients": 40, "slices_per_patient": 20},
    },
}
BENCHMARKS = tuple(SCALES["small"])


def run_benchmark(name: str, sizes: dict, work_dir: str) -> list[dict]:
    if name == "ingestion":
        from benchmarks import ingestion

        return ingestion.run(work_dir, sizes["patients"], sizes["slices_per_patient"])
    if name == "input_pipeline":
        from benchmarks import input_pipeline
        from core import synthetic_data

        data = os.path.join(work_dir, f"input_{sizes['patients']}")
        if not os.path.isdir(data):
            synthetic_data.generate_dataset(data, sizes["patients"], 20, seed=0)
        options = {key: value for key, value in sizes.items() if key != "patients"}
        return input_pipeline.run(os.path.join(work_dir, f"input_{sizes['patients']}_records"), data, **options)
    if name == "training":
        from benchmarks import training

        return training.run(**sizes)
    if name == "inference":
        from benchmarks import inference

        return inference.run(**sizes)
    from benchmarks import pipeline_overhead

    return pipeline_overhead.run(work_dir, **sizes)


def _find(results: list[dict], benchmark: str, words: str, **match) -> dict | None:
    for result in results:
        if result["benchmark"] == benchmark and words in result["variant"] and all(result.get(k) == v for k, v in match.items()):
            return result
    return None


def comparisons(results: list[dict]) -> list[str]:
    """The ratios the targets are stated in."""
    lines = []
    for result in results:
        if result["benchmark"] == "ingestion" and result["variant"].startswith("pipeline"):
            naive = _find(results, "ingestion", "naive", slices=result["slices"])
            speedup = result["slices_per_second"] / naive["slices_per_second"]
            lines.append(
                f"ingestion, {result['slices']} slices: {result['variant']} = {speedup:.2f}x the naive loop (target >= 3x); "
                f"peak memory {result['peak_rss_mb']:.0f} MB vs {naive['peak_rss_mb']:.0f} MB"
            )
    data = _find(results, "input_pipeline", "full augmentation")
    if data:
        plain = _find(results, "input_pipeline", "no augmentation")["slices_per_second"]
        sequence = _find(results, "input_pipeline", "flips only")["slices_per_second"]
        same = _find(results, "input_pipeline", "the same augmentation")["slices_per_second"]
        step = _find(results, "input_pipeline", "training step")["slices_per_second"]
        rate = data["slices_per_second"]
        size = f"{data['image_size']}x{data['image_size']}"
        lines.append(
            f"input pipeline at {size}: with augmentation {rate / same:.1f}x the PyDataset doing the same augmentation, "
            f"without {plain / sequence:.1f}x the flip-only PyDataset (target >= 5x); {rate / step:.1f}x the UNet-16 steps (target >= 10x)"
        )
    for result in results:
        if "fraction_of_reference" in result:
            fraction = result["fraction_of_reference"]
            lines.append(f"training: {result['variant']} at {fraction:.0%} of the measured convolution throughput (target >= 50%)")
    for batch in (1, 8, 32):
        saved = _find(results, "inference", "SavedModel", batch_size=batch)
        direct = _find(results, "inference", "direct call", batch_size=batch)
        if saved and direct:
            difference = saved["ms_per_slice"] / direct["ms_per_slice"] - 1
            lines.append(
                f"inference at batch {batch}: SavedModel {difference:+.1%} per slice vs the direct Keras call (target: within 10% at 32)"
            )
    rerun = _find(results, "pipeline", "rerun")
    if rerun:
        executed = ", ".join(rerun["executed"]) or "nothing"
        lines.append(f"pipeline rerun with the same inputs: {rerun['wall_seconds']:.1f} s (target < 15 s); executed again: {executed}")
    return lines


def table(results: list[dict]) -> str:
    columns = [
        "benchmark",
        "variant",
        "slices",
        "image_size",
        "batch_size",
        "slices_per_second",
        "ms_per_slice",
        "gflops_per_second",
        "peak_rss_mb",
        "wall_seconds",
        "overhead_seconds",
    ]
    used = [column for column in columns if any(column in result for result in results)]
    lines = ["| " + " | ".join(used) + " |", "|" + "---|" * len(used)]
    for result in results:
        cells = []
        for column in used:
            value = result.get(column, "")
            cells.append(f"{value:,.1f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="small")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--output", default="output/bench/results.json")
    parser.add_argument("--work-dir", default="output/bench/work", help="generated data and scratch outputs (reused between runs)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    os.makedirs(args.work_dir, exist_ok=True)
    work_dir = os.path.abspath(args.work_dir)
    results = []
    started = time.time()
    for name in chosen:
        print(f"== {name}", flush=True)
        results += run_benchmark(name, SCALES[args.scale][name], work_dir)
    report = {
        "machine": common.machine(),
        "scale": args.scale,
        "seconds": time.time() - started,
        "results": results,
        "comparisons": comparisons(results),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as out:
        json.dump(report, out, indent=2)
    print(f"\nMachine: {report['machine']}\n")
    print(table(results))
    print("\n" + "\n".join(f"- {line}" for line in report["comparisons"]))
    print(f"\nwrote {args.output} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
