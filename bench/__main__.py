"""python -m bench [NAME ...] [--quick]: runs the benchmarks one after another (never side by side:
the machine is small and shared), prints each table, writes bench/results/latest.json."""

import argparse
import importlib

from bench import common

# name -> module with run(args) -> Section | list[Section]
BENCHMARKS = ("encoder", "transcription", "search", "gateway", "ingest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}; all by default")
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run in minutes")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    runs = {}
    for name in args.names or BENCHMARKS:
        result = importlib.import_module(f"bench.{name}").run(args)
        runs[name] = result if isinstance(result, list) else [result]
        for section in runs[name]:
            print(section.render() + "\n", flush=True)
    print(f"results: {common.write(runs, args.quick)}")


if __name__ == "__main__":
    main()
