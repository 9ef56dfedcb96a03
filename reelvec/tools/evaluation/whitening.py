"""`python -m reelvec.tools.evaluation.whitening FOLDER... [--fit FOLDER...]`: do whitened frame
descriptors (reelvec/whitening.py) decide copies better than the visual model's rows? For
evaluations saved with 1280-d frames (before the descriptors were whitened): replays each FOLDER's
copy detection twice, on the descriptors as they are and whitened, with the current alignment and
decision, and prints both side by side as Markdown. The whitening is the one served (the visual
model's descriptor head, fitted on reelvec/models/whitening_footage.py's clips), or one fitted on
the frames.npz of each --fit evaluation (queries and originals), which is then not replayed.
Seconds, not the evaluation's minutes; rewrites nothing."""

import argparse
import json
from pathlib import Path

import numpy as np

from reelvec.models import VISUAL_MODEL_NAME, triton_repository, visual
from reelvec.tools.evaluation import copy_methods
from reelvec.whitening import Whitening

COLUMNS = ("micro-AP", "full copies found", "false pairs", "partial copies located", "picture-in-picture", "crop")


def fit(folders: list[Path], dims: int) -> Whitening:
    rows = []
    for folder in folders:
        for tracks in copy_methods.load_tracks(folder / "frames.npz"):
            rows += [t.vectors for t in tracks if t is not None]
    return Whitening.fit(np.concatenate(rows), dims)


def summary(frames: dict) -> list[str]:
    """copy_methods' FRAMES method as the table's cells."""
    false = frames["all"]
    return [f"{frames['micro_ap']:.3f}", f"{frames['full']['recall']:.3f}",
            f"{false['false_copies']} ({100 * false['false_copy_rate']:.2f}%)",
            f"{frames['segments']['located']:.3f}",
            *(f"{frames['by_kind'][kind]:.2f}" if kind in frames["by_kind"] else "-" for kind in ("pip", "crop"))]


def compare(folder: Path, whitening: Whitening) -> list[list[str]]:
    """Two rows for one evaluation: its descriptors as they are, and whitened."""
    saved = next(t for tracks in copy_methods.load_tracks(folder / "frames.npz") for t in tracks if t is not None).dim
    if saved != whitening.matrix.shape[0]:
        raise SystemExit(f"{folder}: its frames have {saved} values a row, the whitening takes "
                         f"{whitening.matrix.shape[0]}: an evaluation saved with whitened descriptors has nothing to whiten")
    section = json.loads((folder / "report.json").read_text())["copy_methods"]
    rows = []
    for label, project in ((f"as stored ({whitening.matrix.shape[0]}-d)", None),
                           (f"whitened to {whitening.dims}-d", whitening.track)):
        replayed = copy_methods.replay(section, folder / "frames.npz", project)
        rows.append([folder.name, label, *summary(replayed[copy_methods.FRAMES])])
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="evaluations to replay: report.json and frames.npz")
    parser.add_argument("--fit", type=Path, action="append", default=[],
                        help="an evaluation whose frames the whitening is fitted on (repeatable); never replayed; "
                             "default: the served whitening")
    parser.add_argument("--dims", type=int, default=256, help="with --fit")
    args = parser.parse_args(argv)
    if args.fit:
        whitening = fit(args.fit, args.dims)
        print(f"whitening fitted on {', '.join(f.name for f in args.fit)}\n")
    else:
        whitening = visual.served_whitening(triton_repository() / VISUAL_MODEL_NAME / "1" / "model.onnx")
        print("the served whitening (the visual model's descriptor head)\n")
    print("| evaluation | descriptors | " + " | ".join(COLUMNS) + " |")
    print("| --- " * (2 + len(COLUMNS)) + "|")
    fitted = {f.resolve() for f in args.fit}
    for folder in args.folders:
        if folder.resolve() not in fitted:
            for row in compare(folder, whitening):
                print("| " + " | ".join(row) + " |")
    for folder in args.folders:
        if folder.resolve() in fitted:  # on its own frames whitening flattens what tells its copies apart
            print(f"\n{folder.name}: not replayed, the whitening was fitted on it")


if __name__ == "__main__":
    main()
