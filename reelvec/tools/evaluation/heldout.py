"""`python -m reelvec.tools.evaluation.heldout` (`make evaluate-heldout`): copy detection on footage
that no test was chosen on, end to end in one command: cuts a held-out set's clips
(reelvec/tools/real_media.py), starts the stack on an empty data directory, runs `reelvec
evaluate` on them with every edit and the films' other moments as the unrelated videos, and
writes report.md, report.json and frames.npz. `--set bbb` is the footage the copy decision is
calibrated on, `--set debian` the footage it is checked on: docs/copies.md quotes the second as
accuracy; the tests' own clips only check the mechanics."""

import argparse
import tempfile
from pathlib import Path

from reelvec.tools import real_media
from reelvec.tools.evaluation import report, transforms
from reelvec.tools.launcher import free_port
from reelvec.tools.local_stack import RunningStack
from reelvec.tools.progress import Progress, mode_for
from reelvec.v1 import common_pb2


def run(media: Path, films: tuple[real_media.Film, ...], concurrency: int, progress: Progress) -> dict:
    clips = real_media.heldout(media, films)
    corpus = sorted(path for path in clips.values() if path.parent.name == "corpus")
    unrelated = sorted(path for path in clips.values() if path.parent.name == "unrelated")
    items = [(path, common_pb2.VideoMetadata(id=path.stem)) for path in corpus]
    with tempfile.TemporaryDirectory() as data:
        stack = RunningStack(Path(data), free_port())
        stack.start()
        try:
            return report.evaluate(stack.stub(), items, None, transforms.TRANSFORMS, concurrency,
                                   clip3d_steps=0, progress=progress, unrelated=unrelated)
        finally:
            stack.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="films", choices=sorted(real_media.HELDOUT), default="bbb")
    parser.add_argument("--media", type=Path, help="where the clips go (default .media/heldout/SET)")
    parser.add_argument("--out", type=Path, help="folder for report.md, report.json and frames.npz "
                                                 "(default evaluation-heldout/SET)")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    args.media = args.media or Path(".media/heldout") / args.films
    args.out = args.out or Path("evaluation-heldout") / args.films
    result = run(args.media, real_media.HELDOUT[args.films], args.concurrency, Progress(mode_for(False), prefix="evaluate-heldout: "))
    for path in report.write(result, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
