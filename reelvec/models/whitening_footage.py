"""The footage the frame descriptors' whitening is fitted on (reelvec/whitening.py, docs/copies.md
"Whitening"), and the fit.

A whitening fitted on the footage it then serves flattens what tells that footage's copies apart,
and one fitted on an evaluation's clips can no longer be judged by that evaluation. So it is fitted
on other footage: real clips from Debian 12 packages (main, so under DFSG-free licences, each as its
package's copyright file says) that no test, evaluation, threshold or constant was chosen on, and as
varied as the packages offer: phone and camera footage (a cockatoo, physics experiments, a diver, a
1906 motor race), a rocket launch rendered for a game, screen recordings, music visualizations.
30 clips, 225 s; every frame at PER_SECOND with the 5 crops a copy query's frames carry
(reelvec/frames.py `views`), so that the fit sees how a crop moves a frame's features.
"""

import hashlib
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from reelvec import config, debian, frames, modalities
from reelvec.vectors import unit
from reelvec.whitening import Whitening

_LEBINIOU = tuple(f"./usr/share/lebiniou/vue/media/lebiniou-2021-06-10_{t}.mp4" for t in (
    "12-17-47", "12-19-19", "12-19-53", "12-23-00", "12-23-40", "12-24-29", "12-27-01", "12-27-41",
    "12-28-28", "12-32-58", "12-34-46", "12-35-23"))
_MECAVIDEO = tuple(f"./usr/share/pymecavideo/data/video/{name}" for name in (
    "Effet_force_magnetique.ogv", "Force_constante.avi", "Principe_inertie.avi", "balle-jbart.mp4",
    "balle1-vp9.avi", "g1.avi", "g2.avi", "retroMars2018.avi"))
# package=version -> the clips taken from it
FOOTAGE = {
    "python3-imageio=2.4.1-5": ("./usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",),
    "gem-doc=1:0.94-8": ("./usr/share/gem/examples/data/anim-1.mov", "./usr/share/gem/examples/data/homer.avi"),
    "forensics-samples-files=1.1.4-5": (
        "./usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4",
        "./usr/share/forensics-samples/original-files/movie2/movie-hello.mp4"),
    "pampi=1.1+dfsg1-7": ("./usr/share/pampi/presentations/data/pampi-help/tour.mp4",),
    "python3-hug-doc=2.6.0-2.4": ("./usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4",),
    "pd-extendedview=0.5~repack-4": ("./usr/share/doc/pd-extendedview/media/diver.mov",),
    "python-nbsphinx-doc=0.8.11+ds-1": (
        "./usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv",),
    "kphotoalbum=5.9.1-1": ("./usr/share/kphotoalbum/demo/movie.avi",),
    "renpy-demo=8.0.3+dfsg-1": ("./usr/share/games/renpy/demo/game/oa4_launch.webm",),
    "python3-mecavideo=8.0~rc5-1": _MECAVIDEO,
    "lebiniou-data=3.66.0-1": _LEBINIOU,
}
# sha256 of the clips' sha256 hex digests, one a line, in FOOTAGE's order: a package rebuilt under
# the same version fails loudly instead of moving the projection
SHA256 = "daf84ef14598db082012446923d20275618979ccf4cc2c3d9c6f4d03ab87a561"
PER_SECOND = 4.0
DIMS = modalities.FRAME_DIM
RECIPE = f"footage-{SHA256[:16]}:per-second-{PER_SECOND:g}:views:pca-{DIMS}"


def digest(clips: list[bytes]) -> str:
    lines = "".join(hashlib.sha256(clip).hexdigest() + "\n" for clip in clips)
    return hashlib.sha256(lines.encode()).hexdigest()


def _names() -> list[str]:
    return [f"{i:02d}-{Path(path).name}" for i, path in enumerate(p for paths in FOOTAGE.values() for p in paths)]


def clips(cache: Path | None = None) -> list[bytes]:
    """The footage's files, kept under `cache` (default: the models dir) once fetched from the
    Debian archive (about 145 MB of packages, not kept; 25 MB of clips, kept so that a fine-tuned
    encoder's whitening is fitted without the network)."""
    cache = Path(cache or config.models_dir() / "whitening-footage")
    names = _names()
    if all((cache / name).exists() for name in names):
        found = [(cache / name).read_bytes() for name in names]
        if digest(found) == SHA256:
            return found
    found = []
    with tempfile.TemporaryDirectory() as folder:
        for package, paths in FOOTAGE.items():
            found += debian.data_files(debian.download(package, Path(folder)), paths)
    got = digest(found)
    if got != SHA256:
        raise RuntimeError(f"the whitening footage has digest {got}, expected {SHA256}: a package changed")
    cache.mkdir(parents=True, exist_ok=True)
    for name, clip in zip(names, found):
        (cache / name).write_bytes(clip)
    return found


def fit(embed: Callable[[np.ndarray], np.ndarray], footage: list[bytes] | None = None) -> Whitening:
    """`embed`: uint8 frames [n, 224, 224, 3] -> the visual model's features [n, dim]; `footage`:
    default clips()."""
    rows = []
    for clip in clips() if footage is None else footage:
        sampled = frames.sample(clip, count=4, per_second=PER_SECOND, max_count=400, with_views=True)
        rows += [embed(sampled.frames), embed(sampled.views.reshape(-1, *sampled.views.shape[2:]))]
    return Whitening.fit(unit(np.concatenate(rows), np.float32), DIMS)
