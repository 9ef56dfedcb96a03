"""`python -m reelvec.tools.evaluation.replay FOLDER`: a finished evaluation's frame-descriptor
results done again with the current alignment and decision (reelvec/copies.py), from the frames.npz
it saved beside report.json: seconds instead of the evaluation's minutes of making and embedding
copies, so a change to the copy rules is measured on the same footage. Rewrites report.json and
report.md in FOLDER; the other sections (the mean vector's column among them) stay as measured."""

import argparse
import json
from pathlib import Path

from reelvec.tools.evaluation import copy_methods, report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an evaluation's folder: report.json and frames.npz")
    args = parser.parse_args(argv)
    measured = json.loads((args.folder / "report.json").read_text())
    measured["copy_methods"] = copy_methods.replay(measured["copy_methods"], args.folder / "frames.npz")
    for path in report.write(measured, args.folder):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
