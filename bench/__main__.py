"""python -m bench [NAME ...] [--quick]: runs the benchmarks one after another (never side by side:
the machine is small and shared), prints each table, writes bench/results/latest.json."""

import argparse
import importlib
import importlib.util
from pathlib import Path

from bench import common

# name -> module with run(args) -> Section | list[Section]
BENCHMARKS = ("encoder", "transcription", "search", "gateway", "ingest", "copies", "replicas", "regressor")
GPU_BENCHMARKS = ("encoder", "transcription", "ingest")


def _module(name: str, device: str) -> str:
    """bench/NAME_gpu.py holds a suite's GPU rows where they are not its CPU rows on another device."""
    gpu = f"bench.{name}_gpu"
    return gpu if device != "cpu" and importlib.util.find_spec(gpu) else f"bench.{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}; all by default")
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run in minutes")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help=f"cuda: the GPU rows of {', '.join(GPU_BENCHMARKS)} (BENCHMARKS.md, GPU; bench/gpu/run.sh)")
    parser.add_argument("--inputs", type=Path, help="with --device: the suite's inputs decoded beforehand on a "
                        "machine with espeak-ng and PyAV (python -m bench.NAME --save-inputs PATH)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    if args.device != "cpu" and set(args.names or BENCHMARKS) - set(GPU_BENCHMARKS):
        parser.error(f"--device {args.device} is for {', '.join(GPU_BENCHMARKS)} only: name them")
    runs = {}
    for name in args.names or BENCHMARKS:
        result = importlib.import_module(_module(name, args.device)).run(args)
        key = name if args.device == "cpu" else f"{name}_{args.device}"  # a GPU run never replaces the CPU's
        runs[key] = result if isinstance(result, list) else [result]
        for section in runs[key]:
            print(section.render() + "\n", flush=True)
    print(f"results: {common.write(runs, args.quick)}")


if __name__ == "__main__":
    main()
