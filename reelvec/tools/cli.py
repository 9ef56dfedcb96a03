"""The `reelvec` command line. Client commands talk to the gateway: --gateway, else $REELVEC_GATEWAY,
else 127.0.0.1:50051. A failure exits non-zero with one line on stderr naming the gRPC status."""

import argparse
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import grpc
from google.protobuf import json_format

from reelvec import config, modalities
from reelvec.tools import client
from reelvec.tools.progress import Progress, mode_for
from reelvec.v1 import common_pb2, gateway_pb2


def _hits(hits) -> list[dict]:
    return [{"id": h.id, "score": round(float(h.score), 6)} for h in hits]


def _transcript(t: common_pb2.Transcript) -> dict:
    return {
        "text": t.text,
        "language": t.language,
        "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in t.segments],
    }


def _clock(seconds: float) -> str:
    """m:ss, the way a player shows a position: whole seconds elapsed (the web page writes the same)."""
    whole = math.floor(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _segment(s: common_pb2.CopiedSegment) -> dict:
    # frames are sampled about once a second: hundredths say all there is to say
    return {"query_start": round(s.query_start, 2), "query_end": round(s.query_end, 2),
            "ref_start": round(s.ref_start, 2), "ref_end": round(s.ref_end, 2), "score": round(float(s.score), 4)}


def _copies(copies) -> list[dict]:
    return [{"id": c.id, "score": round(float(c.score), 4), "segments": [_segment(s) for s in c.segments]}
            for c in copies]


def _copied_segments(copies) -> list[dict]:
    """Predict's copies flattened: one entry per copied segment, naming its video."""
    return [{"id": c.id, **_segment(s)} for c in copies for s in c.segments]


def _copy_lines(copies, query: str = "your clip") -> list[str]:
    return [f"{_clock(s['query_start'])}-{_clock(s['query_end'])} of {query} matches "
            f"{_clock(s['ref_start'])}-{_clock(s['ref_end'])} of {s['id']} (score {s['score']:.2f})"
            for s in _copied_segments(copies)]


def _emit(args, result: dict, human: str) -> None:
    print(json.dumps(result) if args.json else human)


def cmd_index(args, stub) -> int:
    bad_lines = []

    def bad_line(message: str) -> None:
        bad_lines.append(message)
        print(f"error: {message}", file=sys.stderr)

    # A file named on the command line is indexed whatever is stored (e.g. again after a model
    # change); manifest lines stored already with the same bytes are skipped, so that a bulk ingest
    # resumes where it was interrupted.
    items = [(Path(f), common_pb2.VideoMetadata(), True) for f in args.files]
    if args.manifest:
        items += [(path, metadata, args.force)
                  for path, metadata in client.read_manifest(Path(args.manifest), bad_line)]
    if not items and not bad_lines:
        raise SystemExit("reelvec index: give video files, --manifest FILE.jsonl, or both")

    def one(item):
        path, metadata, force = item
        try:
            response = client.index_unless_stored(stub, path, metadata, force)
            if response is None:
                return {"path": str(path), "id": metadata.id or path.stem, "skipped": True}
            return {"path": str(path), "id": response.id, "created": response.created,
                    "modalities": list(response.modalities)}
        except grpc.RpcError as exc:
            return {"path": str(path), "error": f"{exc.code().name}: {exc.details()}"}
        except OSError as exc:
            return {"path": str(path), "error": f"cannot read file: {exc.strerror}"}

    progress = Progress(mode_for(args.json))
    progress.stage("index", len(items))
    # A few uploads in flight keep Triton's dynamic batcher and both pipelines busy.
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = [pool.submit(one, item) for item in items]
        try:
            for future in as_completed(futures):
                result = future.result()
                progress.advance(failed="error" in result, skipped="skipped" in result)
                if "error" in result:
                    progress.write(f"error: {result['path']}: {result['error']}", sys.stderr)
                elif "skipped" not in result or args.json:
                    progress.write(json.dumps(result) if args.json else
                                   f"indexed {result['id']} ({'new' if result['created'] else 'replaced'})")
        except KeyboardInterrupt:
            # what is stored stays stored: the same command again skips it
            pool.shutdown(wait=False, cancel_futures=True)
            progress.close()
            print(f"interrupted after {progress.done} of {len(items)}: run the same command again to resume",
                  file=sys.stderr)
            return 130
    progress.close()
    failed = progress.failed + len(bad_lines)
    if not args.json:
        print(f"{progress.done - progress.failed - progress.skipped} indexed, {progress.skipped} skipped as "
              f"stored already with the same content{' (--force indexes them again)' if progress.skipped else ''}, "
              f"{failed} failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_search(args, stub) -> int:
    request = gateway_pb2.SearchRequest(k=args.k, modality=modalities.to_proto(args.modality) if args.modality else 0)
    if args.video:
        request.video = Path(args.video).read_bytes()
    elif args.id:
        request.id = args.id
    else:
        request.text = args.text
    response = stub.Search(request, timeout=client.QUERY_TIMEOUT)
    hits = _hits(response.hits)
    _emit(args, {"hits": hits}, "\n".join(f"{h['score']:.4f}  {h['id']}" for h in hits) or "no hits")
    return 0


def cmd_predict(args, stub) -> int:
    request = gateway_pb2.PredictRequest(
        video=Path(args.file).read_bytes(),
        caption=args.caption or "",
        hashtags=[t.strip().lstrip("#") for t in (args.hashtags or "").split(",") if t.strip()],
        k=args.k,
    )
    stats = {"followers": args.followers, "following": args.following,
             "likes": args.author_likes, "videos": args.author_videos}
    if any(v is not None for v in stats.values()):
        request.author.CopyFrom(common_pb2.AuthorStats(**{k: v or 0 for k, v in stats.items()}))
    r = stub.Predict(request, timeout=client.QUERY_TIMEOUT)
    has_views = r.HasField("views")
    result = {
        "likes": r.likes,
        "likes_low": r.likes_low,
        "likes_high": r.likes_high,
        # null without a views model (too few training videos carried views)
        "views": r.views.value if has_views else None,
        "views_low": r.views.low if has_views else None,
        "views_high": r.views.high if has_views else None,
        "originality": round(float(r.originality), 6),
        "near_duplicate_of": r.near_duplicate_of or None,
        "hashtags": list(r.hashtags),
        "similar": _hits(r.similar),
        "copied_segments": _copied_segments(r.copies),
    }
    _emit(args, result, _predict_human(r, result))
    return 0


def _predict_human(r: gateway_pb2.PredictResponse, result: dict) -> str:
    return "\n".join([
        f"likes {r.likes:,.0f} (80% interval {r.likes_low:,.0f} - {r.likes_high:,.0f})",
        *([f"views {r.views.value:,.0f} (80% interval {r.views.low:,.0f} - {r.views.high:,.0f})"]
          if r.HasField("views") else []),
        f"originality {r.originality:.2f}" + (f", near-duplicate of {r.near_duplicate_of}" if r.near_duplicate_of else ""),
        f"hashtags {' '.join('#' + t for t in r.hashtags) or '-'}",
        "similar " + ", ".join(f"{h['id']} ({h['score']:.2f})" for h in result["similar"]),
        *("copied: " + line for line in _copy_lines(r.copies)),
    ])


def cmd_copies(args, stub) -> int:
    if args.id:
        response = client.find_copies(stub, args.k, video_id=args.id)
    else:
        response = client.find_copies(stub, args.k, path=Path(args.file))
    lines = _copy_lines(response.copies, args.id or "your clip")
    _emit(args, {"copies": _copies(response.copies)}, "\n".join(lines) or "no copies found")
    return 0


def cmd_transcribe(args, stub) -> int:
    t = stub.Transcribe(gateway_pb2.TranscribeVideoRequest(video=Path(args.file).read_bytes()),
                        timeout=client.QUERY_TIMEOUT)
    _emit(args, _transcript(t), f"[{t.language or '-'}] {t.text}")
    return 0


def cmd_embed(args, stub) -> int:
    r = stub.Embed(gateway_pb2.EmbedRequest(video=Path(args.file).read_bytes(), caption=args.caption or ""),
                   timeout=client.QUERY_TIMEOUT)
    result = {name: list(r.embeddings.vectors[name].values) if name in r.embeddings.vectors else []
              for name in ("visual", "audio", "text", "fused")}
    result["transcript"] = r.transcript.text
    human = "\n".join(f"{k}: {len(v)} values" for k, v in result.items() if k != "transcript")
    _emit(args, result, human + f"\ntranscript: {r.transcript.text}")
    return 0


def cmd_get(args, stub) -> int:
    record = stub.Get(gateway_pb2.GetVideoRequest(id=args.id), timeout=client.QUERY_TIMEOUT)
    print(json_format.MessageToJson(record, indent=None if args.json else 2))
    return 0


def cmd_delete(args, stub) -> int:
    r = stub.Delete(gateway_pb2.DeleteVideoRequest(id=args.id), timeout=client.QUERY_TIMEOUT)
    _emit(args, {"deleted": r.deleted}, "deleted" if r.deleted else "no such video")
    return 0


def _reembed_progress(status) -> None:
    print(f"re-embedding into {status.collection}: {status.done}/{status.total}", file=sys.stderr, flush=True)


def cmd_train(args, stub) -> int:
    if args.model == "encoder":
        return _train_encoder(args, stub)
    if args.model == "fusion":
        return _train_fusion(args, stub)
    if args.files:
        raise ValueError("reelvec train regressor takes no files: it trains on the indexed videos with likes")
    report = client.train_regressor(stub, args.regressor, args.huber, args.compare)
    result = json_format.MessageToDict(report, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for printed in (result, result.get("views", {})):
        printed.pop("out_of_fold", None)  # one entry per video: what the plots draw, too long to print
    summary = _regressor_summary(report)
    if report.HasField("views"):
        summary += "\n\nviews: " + _regressor_summary(report.views, "views")
    else:
        summary += f"\n\nno views model: {report.views_skipped or 'the regressor trained none'}"
    if args.out:
        from reelvec.tools.training import regressor_report

        result["report"] = str(regressor_report.write(report, summary, Path(args.out)))
        summary += f"\nreport and plots: {result['report']}"
    _emit(args, result, summary)
    return 0


def _regressor_summary(report, target: str = "likes") -> str:
    """The served model's out-of-fold scores, then the tables: every model (with its time hold-out
    beside it when there is one) and the served kind's ablations. `target`: what it predicts."""
    lines = [
        f"trained {report.model_version} on {report.train_size} videos ({report.validation})",
        f"out of fold: MAE {report.mae:.3f} (mean predictor {report.baseline_mae:.3f}) in log1p({target}), "
        f"R^2 {report.r2:.3f}, Spearman {report.spearman:.3f}; the 80% interval covered "
        f"{100 * report.interval_coverage:.0f}% of unseen authors' videos, (1+high)/(1+low) = {report.interval_ratio:.1f}",
    ]
    newest = {s.model: s for s in report.time_holdout}
    if report.comparison:
        lines += ["", "model         author folds: R^2  Spearman   MAE  quartile acc." +
                  ("   newest: R^2  Spearman" if newest else "")]
        for s in report.comparison:
            line = f"{s.model:<12} {s.r2:18.3f}  {s.spearman:8.3f}  {s.mae:5.3f}  {s.quartile_accuracy:13.3f}"
            if s.model in newest:
                line += f"  {newest[s.model].r2:12.3f}  {newest[s.model].spearman:8.3f}"
            lines.append(line)
    if report.ablations:
        width = max(len(s.features) for s in report.ablations)
        lines += ["", f"{report.ablations[0].model + ' on':<{width}} {'R^2':>6}  Spearman   MAE   (author folds)"]
        lines += [f"{s.features:<{width}} {s.r2:6.3f}  {s.spearman:8.3f}  {s.mae:5.3f}" for s in report.ablations]
    return "\n".join(lines)


def _train_encoder(args, stub) -> int:
    from reelvec.tools.training import encoder_command

    report = encoder_command.train(
        stub, config.data_dir(args.data_dir), [Path(f) for f in args.files], args.steps, args.batch, args.lr,
        reembed=not args.no_reembed, progress=None if args.json else _reembed_progress, multimodal=args.multimodal,
    )
    audio = f" and audio version {report['audio_version']}" if "audio_version" in report else ""
    return _training_report(args, report, f"trained visual version {report['visual_version']}{audio} on "
                                          f"{report['videos']} videos in {report['train_seconds']} s")


def _train_fusion(args, stub) -> int:
    from reelvec.tools.training import fusion_command

    report = fusion_command.train(stub, config.data_dir(args.data_dir), reembed=not args.no_reembed,
                                  progress=None if args.json else _reembed_progress)
    return _training_report(args, report, f"trained fusion {report['fusion']} on {report['videos']} videos in "
                                          f"{report['train_seconds']} s ({report['epochs']} epochs)")


def _training_report(args, report: dict, what: str) -> int:
    """Prints a train encoder/fusion report; fails when its re-embed did not finish."""
    human = f"{what}, loss {report['loss_first']:.3f} -> {report['loss_last']:.3f}"
    if "reembed" in report:
        human += f"\nre-embed into {report['collection']}: {report['reembed']}"
        human += f" ({report['error']})" if report["error"] else ""
    _emit(args, report, human)
    return 0 if report.get("reembed", "DONE") == "DONE" else 1


def cmd_reembed(args, stub) -> int:
    from reelvec.tools.training import stack

    starting = bool(args.visual_version or args.fusion or args.audio_version)
    if starting:
        request = gateway_pb2.ReembedRequest(visual_version=args.visual_version or "", fusion=args.fusion or "",
                                             audio_version=args.audio_version or "")
        stub.Reembed(request, timeout=client.QUERY_TIMEOUT)
    if starting and args.wait:
        status = stack.wait(stub, None if args.json else _reembed_progress)
    else:
        status = stub.GetReembed(gateway_pb2.GetReembedRequest(), timeout=client.QUERY_TIMEOUT)
    result = json_format.MessageToDict(status, preserving_proto_field_name=True)
    state = gateway_pb2.ReembedStatus.State.Name(status.state)
    _emit(args, result, f"{state}: {status.collection or '-'} {status.done}/{status.total}"
                        + (f" ({status.error})" if status.error else "") + f"; the alias points at {status.active or '-'}")
    return 1 if status.state == gateway_pb2.ReembedStatus.FAILED else 0


def cmd_keys(args) -> int:
    from reelvec.api_keys import KeyFile

    store = KeyFile(Path(args.file) if args.file else config.data_dir(args.data_dir) / "api-keys.json")
    try:
        if args.action == "create":
            key, record = store.create(args.scope, args.rate, args.burst)
            result, human = {"key": key, **record.public()}, f"{key}\n(shown once: store it now; id {record.id})"
        elif args.action == "list":
            result = {"keys": store.list()}
            human = "\n".join(f"{k['id']}  {k['scope']:<5}  {k['rate']:g}/s burst {k['burst']}" for k in result["keys"])
        else:
            revoked = store.revoke(args.id)
            result, human = {"revoked": revoked}, "revoked" if revoked else f"no key {args.id}"
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _emit(args, result, human or "no keys")
    return 0 if args.action != "revoke" or result["revoked"] else 1


def cmd_deploy(args) -> int:
    from kubernetes.client import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from reelvec.tools.deploy import render
    from reelvec.tools.deploy.cluster import Cluster, waves

    try:
        if args.action == "render":
            print(render.to_yaml(render.render(args.overlay, args.tag, args.registry, args.manifests)), end="")
            return 0
        if args.action == "plan":
            return cmd_deploy_plan(args)
        cluster = Cluster.connect(args.kubeconfig, args.context)
        if args.action == "apply":
            applied = []
            for wave in waves(render.render(args.overlay, args.tag, args.registry, args.manifests)):
                applied += cluster.apply(wave)
                cluster.wait_for_rollouts(wave, args.timeout)
            result, human = {"applied": applied}, f"applied {len(applied)} objects; every workload rolled out"
        elif args.action == "status":
            result = cluster.status()
            human = "\n".join(
                [f"{name:<12} {w['ready']}/{w['replicas']} ready{'' if w['rolled_out'] else ' (rolling out)'}"
                 for name, w in sorted(result["workloads"].items())]
                + [f"hpa {name:<8} {h['current']} -> {h['desired']} (min {h['min']}, max {h['max']})"
                   for name, h in sorted(result["autoscalers"].items())]
                + [f"triton {name}: versions {', '.join(v) if isinstance(v, list) else v}"
                   for name, v in sorted(result["triton_models"].items())]
            )
        else:
            result = cluster.scale(args.name, args.replicas)
            human = f"{result['name']}: {result['replicas']} replicas" + (
                " (its autoscaler's minimum too)" if result["autoscaler_min"] else "")
    except ApiException as exc:
        print(f"error: Kubernetes API: {exc.status} {exc.reason}: {exc.body or ''}".strip(), file=sys.stderr)
        return 1
    except HTTPError as exc:
        print(f"error: cannot reach the Kubernetes API: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TimeoutError, ConfigException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _emit(args, result, human)
    return 0


def cmd_deploy_plan(args) -> int:
    from reelvec.tools.deploy import capacity, overlay, render

    load = capacity.Load(
        args.uploads_per_day, args.avg_seconds, args.searches_per_second, args.gpu, args.headroom, args.peak,
        args.stored_videos, args.node_cpus, args.node_memory_gib, args.gpus_per_node, args.qdrant_memory_gib,
        args.qdrant_disk_gib,
        **{name: getattr(args, name) for name in ("quantization", "quantization_originals")
           if getattr(args, name) is not None})
    load.check()  # before kustomize runs: a bad flag is named at once
    manifests = Path(args.manifests)
    folder = overlay.base_for(load.gpu, manifests)
    if not (folder / "kustomization.yaml").is_file():
        raise ValueError(f"no {folder}/kustomization.yaml: run from a reelvec checkout or pass --manifests")
    sizes = overlay.sizes_from(render.kustomize(folder))
    plan = capacity.plan(load, sizes)
    human = capacity.describe(plan)
    result = plan.as_dict()
    if args.out:
        written = overlay.write(plan, Path(args.out), manifests, sizes, human)
        result["overlay"] = str(written)
        human += f"\noverlay: {written} (reelvec deploy render --overlay {written.parent})"
    _emit(args, result, human)
    return 0


def cmd_evaluate(args, stub) -> int:
    import tempfile

    from reelvec.tools.evaluation import copy_methods, report, transforms

    kinds = tuple(args.transforms.split(",")) if args.transforms else transforms.TRANSFORMS
    unknown = set(kinds) - set(transforms.TRANSFORMS)
    if unknown:
        raise ValueError(f"unknown transform {', '.join(sorted(unknown))}: use {', '.join(transforms.TRANSFORMS)}")
    bad_lines = []

    def bad_line(message: str) -> None:
        bad_lines.append(message)
        print(f"error: {message}", file=sys.stderr)

    progress = Progress(mode_for(args.json), prefix="evaluate: ")
    with tempfile.TemporaryDirectory() as work:
        items, labels = report.corpus(args.files, Path(args.manifest) if args.manifest else None, Path(work),
                                      bad_line)
        result = report.evaluate(stub, items, labels, kinds, args.concurrency, args.clip3d_steps, progress,
                                 [Path(f) for f in args.unrelated])
    as_json, as_md, *_ = report.write(result, Path(args.out))
    result = report.serializable(result)
    fused = result["copy_detection"]["fused (served)"]
    frames = result["copy_methods"][copy_methods.FRAMES]
    _emit(args, result, f"{result['videos']} videos, {result['copies']} copies: fused recall@1 "
                        f"{fused['recall@1']:.3f}, micro-AP {fused['micro_ap']:.3f}; frames: full copies found "
                        f"{frames['full']['recall']:.3f}, partial located {frames['segments']['located']:.3f}; "
                        f"report: {as_md} and {as_json}")
    if bad_lines:
        print(f"error: {len(bad_lines)} manifest lines left out of the evaluation", file=sys.stderr)
    return 1 if bad_lines else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelvec", description="short-video embeddings over gRPC")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start Triton and every service on 127.0.0.1")
    up.add_argument("--data-dir", default=None)
    up.add_argument("--port", type=int, default=50051)
    up.add_argument("--web-port", type=int, default=8080, help="the web page for creators (services/web)")
    up.add_argument("--sample", action="store_true",
                    help="index the bundled sample corpus and train the regressor when the store is empty")
    up.add_argument("--encoder-replicas", type=int, default=1,
                    help="encoder processes; the gateway spreads its calls over them round-robin")
    up.add_argument("--gpu", action="store_true",
                    help="the visual model (Triton, PyTorch on CUDA) and Whisper (float16) on this machine's GPU; "
                         "needs torch with CUDA, torchvision and onnx2torch (docs/encoder.md)")

    deploy = sub.add_parser("deploy", help="Kubernetes: render, apply, status, scale (docs/deploy.md)")
    actions = deploy.add_subparsers(dest="action", required=True)
    for action, help_text in (("render", "print an overlay with the chosen images"),
                              ("apply", "server-side apply an overlay and wait for the rollouts")):
        a = actions.add_parser(action, help=help_text)
        a.add_argument("--overlay", default="cpu",
                       help="cpu, gpu, or a folder with a kustomization.yaml (`reelvec deploy plan --out`)")
        a.add_argument("--tag", default="latest", help="image tag of every reelvec image")
        a.add_argument("--registry", default="", help="registry (and path) the reelvec images are pulled from")
        a.add_argument("--manifests", default="deploy/k8s",
                       help="the kustomize tree (base/, overlays/) of a checkout; default: ./deploy/k8s")
    a.add_argument("--timeout", type=float, default=900.0,
                   help="seconds to wait for each wave of rollouts (the services, then the gateway)")
    a = actions.add_parser("plan", help="pods and nodes per service for a load, and an overlay (docs/capacity.md)")
    a.add_argument("--uploads-per-day", type=float, required=True)
    a.add_argument("--avg-seconds", type=float, required=True, help="the average upload's length")
    a.add_argument("--searches-per-second", type=float, required=True)
    a.add_argument("--gpu", action="store_true", help="Triton and the transcriber on GPUs (the gpu overlay)")
    a.add_argument("--headroom", type=float, default=0.3,
                   help="share of every pod kept free at the given rates (default 0.3: at most 70%% busy)")
    a.add_argument("--peak", type=float, default=2.0,
                   help="the autoscalers' maximum as a multiple of the planned pods (default 2)")
    a.add_argument("--stored-videos", type=int, default=None,
                   help="videos Qdrant holds; default: a year of uploads")
    a.add_argument("--node-cpus", type=float, default=16.0, help="CPUs of a node (default 16)")
    a.add_argument("--node-memory-gib", type=float, default=64.0, help="memory of a node (default 64)")
    a.add_argument("--gpus-per-node", type=int, default=1)
    a.add_argument("--qdrant-memory-gib", type=float, default=None,
                   help="memory of a Qdrant pod; default: the manifest's request")
    a.add_argument("--qdrant-disk-gib", type=float, default=None,
                   help="volume of a Qdrant pod; default: the manifest's")
    # No argparse choices: Load.check names the measured kinds and refuses in one line like the other
    # flags; None takes the search service's default, which capacity.py holds (not imported here: numpy).
    a.add_argument("--quantization", default=None,
                   help="the fused vector's, as the search service takes it: none, int8, binary or binary2 "
                        "(default: the service's, int8)")
    a.add_argument("--quantization-originals", default=None,
                   help="where the fused vector's float32 originals live: memory or disk (default: the "
                        "service's, memory)")
    a.add_argument("--out", default=None,
                   help="write the overlay (kustomization.yaml) into this folder; default: print only")
    a.add_argument("--manifests", default="deploy/k8s",
                   help="the kustomize tree whose requests are planned with and that the overlay builds on")
    actions.add_parser("status", help="workloads, autoscalers and Triton's model versions")
    a = actions.add_parser("scale", help="set the replicas of encoder, triton, gateway or transcriber")
    a.add_argument("name")
    a.add_argument("replicas", type=int)
    for name, a in actions.choices.items():
        if name != "plan":  # the plan reads the manifests, not a cluster
            a.add_argument("--kubeconfig", help="else $KUBECONFIG, ~/.kube/config, or the pod's service account")
            a.add_argument("--context")
        a.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="API keys of the gateway in a data dir (docs/reliability.md)")
    key_actions = keys.add_subparsers(dest="action", required=True)
    a = key_actions.add_parser("create", help="make a key; it is printed once and stored hashed")
    a.add_argument("--scope", choices=["read", "write", "admin"], required=True)
    a.add_argument("--rate", type=float, default=50.0, help="calls per second")
    a.add_argument("--burst", type=int, default=100, help="calls at once")
    key_actions.add_parser("list", help="ids, scopes and limits (never the keys)")
    a = key_actions.add_parser("revoke", help="remove a key; the gateway stops taking it within a second")
    a.add_argument("id")
    for a in key_actions.choices.values():
        a.add_argument("--data-dir", help="the gateway's data dir (its keys file: <data-dir>/api-keys.json)")
        a.add_argument("--file", help="the keys file itself, when it lives elsewhere")
        a.add_argument("--json", action="store_true")

    def client_command(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--gateway", default=None, help="HOST:PORT (else $REELVEC_GATEWAY, else 127.0.0.1:50051)")
        p.add_argument("--api-key", default=None, help="else $REELVEC_API_KEY; needed when the gateway has keys")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    p = client_command("index", cmd_index, "index video files and/or a JSONL manifest")
    p.add_argument("files", nargs="*")
    p.add_argument("--manifest")
    # Uploads in flight. More than the stack's workers, so that work queues where it is batched:
    # Triton's frames, and the transcriber's shared Whisper windows (docs/transcriber.md).
    p.add_argument("--concurrency", type=int, default=INDEX_CONCURRENCY)
    p.add_argument("--force", action="store_true",
                   help="index every manifest line, even one whose id is stored already with the same bytes")

    p = client_command("search", cmd_search, "find similar videos")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--video")
    q.add_argument("--id")
    q.add_argument("--text")
    p.add_argument("--modality", choices=sorted(modalities.DIMS))
    p.add_argument("--k", type=int, default=10)

    p = client_command("predict", cmd_predict, "predict likes (and views), originality, hashtags, similar videos")
    p.add_argument("file")
    for flag in ("--followers", "--following", "--author-likes", "--author-videos"):
        p.add_argument(flag, type=int)
    p.add_argument("--caption")
    p.add_argument("--hashtags", help="comma-separated")
    p.add_argument("--k", type=int, default=10)

    p = client_command("copies", cmd_copies, "the stored videos a clip copies, and which seconds (docs/copies.md)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("file", nargs="?", help="a video file (above 2 MiB it is streamed)")
    q.add_argument("--id", help="a stored video instead of a file")
    p.add_argument("--k", type=int, default=10, help="copies to show at most (1-100)")

    p = client_command("transcribe", cmd_transcribe, "speech to text")
    p.add_argument("file")
    p = client_command("embed", cmd_embed, "embed without storing")
    p.add_argument("file")
    p.add_argument("--caption")
    p = client_command("get", cmd_get, "show a stored video")
    p.add_argument("id")
    p = client_command("delete", cmd_delete, "delete a stored video")
    p.add_argument("id")
    p = client_command("evaluate", cmd_evaluate,
                       "compare representations on copy detection, categories and clustering")
    p.add_argument("files", nargs="*", help="videos (default with no manifest: the sample corpus)")
    p.add_argument("--manifest", help="JSONL as for index; a `label` field per line adds category retrieval")
    p.add_argument("--out", default="evaluation", help="folder for report.md and report.json")
    p.add_argument("--transforms", help="comma-separated subset of the copy transforms (default: all)")
    p.add_argument("--unrelated", nargs="+", default=[], metavar="FILE",
                   help="videos outside the corpus that copy none of it: the negatives and the partial copies' "
                        "filler, each at least 10 s (default: generated footage)")
    p.add_argument("--clip3d-steps", type=int, default=100,
                   help="SimCLR steps of the 3D-conv baseline trained on the originals; 0 leaves it out")
    p.add_argument("--concurrency", type=int, default=2)
    p = client_command("reembed", cmd_reembed, "re-embed the corpus with another visual model version, or show progress")
    p.add_argument("--visual-version", help="Triton version of the visual model to re-embed with")
    p.add_argument("--fusion", help="fusion to re-embed with: weighted-concat-v1 or an autoencoder-... of train fusion")
    p.add_argument("--audio-version", help="learned audio encoder version to re-embed with, or stats")
    p.add_argument("--wait", action="store_true", help="wait until the alias has moved")
    p = client_command("train", cmd_train, "train a model")
    p.add_argument("model", choices=["regressor", "encoder", "fusion"])
    p.add_argument("files", nargs="*", help="encoder: videos to train on (default: every kept upload of the stack)")
    p.add_argument("--data-dir", help="encoder, fusion: the stack's data dir, as given to `reelvec up`")
    p.add_argument("--steps", type=int, default=100, help="encoder: SimCLR steps")
    p.add_argument("--batch", type=int, default=16, help="encoder: videos per step (two views each)")
    p.add_argument("--lr", type=float, default=1e-4, help="encoder: AdamW learning rate")
    p.add_argument("--no-reembed", action="store_true", help="encoder, fusion: train and save only; re-embed later")
    p.add_argument("--multimodal", action="store_true",
                   help="encoder: train a log-mel audio encoder with it, aligned to the visual one")
    p.add_argument("--model", dest="regressor", default="", metavar="KIND",
                   help="serve this one: ridge, gbm, mlp, transformer, quartile (a quartile classifier), author "
                        "(author statistics only), mean; default: the best under author folds (docs/regressor.md)")
    p.add_argument("--huber", action="store_true", help="gbm, mlp, transformer: Huber loss instead of squared error")
    p.add_argument("--out", default=None,
                   help="regressor: write report.md and its PNG plots (out-of-fold predictions, the interval's "
                        "coverage, error by followers, ablations) into this folder")
    p.add_argument("--compare", action="store_true", help="measure every model the same way, mlp and transformer too (minutes each); "
                        "without --model, choose among all of them")
    return parser


INDEX_CONCURRENCY = 8


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        from reelvec.tools import launcher

        return launcher.main(args)
    if args.command == "deploy":
        return cmd_deploy(args)
    if args.command == "keys":
        return cmd_keys(args)
    stub = client.connect(client.gateway_address(args.gateway), args.api_key)
    try:
        return args.func(args, stub)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
