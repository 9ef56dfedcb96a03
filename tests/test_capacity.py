"""`reelvec deploy plan`: the capacity model's arithmetic (reelvec/tools/deploy/capacity.py) behaves as
docs/capacity.md says, and the overlay it writes renders and passes the manifests' own checks."""

import dataclasses
import json
import math
import subprocess
import sys

import kubernetes_validate
import pytest
import test_deploy_manifests as manifest_checks
import yaml
from checkout import ROOT

from reelvec.tools.deploy import capacity, measured, overlay, render

K8S = ROOT / "deploy" / "k8s"
EXAMPLE = dict(uploads_per_day=1_000_000, avg_seconds=30, searches_per_second=2_000, stored_videos=10_000_000)


@pytest.fixture(scope="module")
def sizes() -> dict[str, dict[str, capacity.PodSize]]:
    """What the manifests request per pod, for a CPU and a GPU cluster."""
    return {gpu: overlay.sizes_from(render.kustomize(overlay.base_for(gpu, K8S))) for gpu in (False, True)}


def make_plan(sizes, **changes) -> capacity.Plan:
    load = capacity.Load(**{**EXAMPLE, **changes})
    return capacity.plan(load, sizes[load.gpu])


def pods(plan: capacity.Plan) -> dict[str, int]:
    return {name: s.pods for name, s in plan.services.items()}


def test_every_measured_number_is_one_benchmarks_md_reports():
    """measured.py invents nothing: each constant, written as BENCHMARKS.md writes numbers, is there."""
    reported = (ROOT / "BENCHMARKS.md").read_text()
    constants = [measured.ENCODER_CPU_S_PER_VIDEO_S, measured.TRANSCRIBER_CPU_S_PER_VIDEO_S,
                 measured.TRITON_CPU_S_PER_VIDEO_S_IN_INGEST, measured.GATEWAY_CPU_S_PER_VIDEO_S,
                 measured.TRITON_GPU_FRAMES_PER_S, measured.TRANSCRIBER_GPU_VIDEO_S_PER_S,
                 measured.TRANSCRIBER_GPU_CPU_S_PER_VIDEO_S, measured.STACK_CPU_S_PER_SEARCH_PACED * 1000,
                 measured.VIDEO_KIB_PER_VIDEO, measured.FRAMES_DISK_KIB_PER_MINUTE, measured.FRAMES_RAM_KIB_PER_MINUTE,
                 measured.FUSED_ORIGINALS_BYTES_PER_VIDEO,
                 *(round(1 / seconds) for seconds in measured.ENGINE_S_PER_QUERY.values()),
                 *(b for row in measured.FUSED_BYTES_PER_VIDEO.values() for b in row if b is not None)]
    for value in constants:
        written = f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"
        assert written in reported, written
    assert f"{measured.INGEST_SUITE_VIDEO_S:g} s" in reported


def test_the_fused_vector_bytes_are_the_quantized_search_rows_at_100k():
    """Each kind's RAM and disk a video are one row of BENCHMARKS.md's table, in its columns."""
    reported = (ROOT / "BENCHMARKS.md").read_text()
    section = reported.split("## Quantized search", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| qdrant-edge") and "| 100,000 |" in line]
    names = {"none": "float32 HNSW", "int8": "int8 + rescore x2 (service default)", "binary": "binary + rescore x4",
             "binary2": "binary2 + rescore x4"}
    for kind, (in_memory, on_disk, disk) in measured.FUSED_BYTES_PER_VIDEO.items():
        row = next(r for r in rows if r[0] == f"qdrant-edge {names[kind]}")
        assert (row[3], row[4], row[5]) == (f"{in_memory:,}", "-" if on_disk is None else f"{on_disk:,}", f"{disk:,}")
    frames = next(line for line in section.splitlines() if line.startswith("| frame descriptors"))
    assert f"| {measured.FRAMES_RAM_KIB_PER_MINUTE:g} KiB/min |" in frames


def test_the_plan_defaults_to_the_search_services_quantization_and_knows_its_kinds():
    from services.search.settings import SearchSettings
    from services.search.stores import quantization

    assert (capacity.DEFAULT_QUANTIZATION, capacity.DEFAULT_ORIGINALS) == (
        SearchSettings.quantization, SearchSettings.quantization_originals)
    assert set(capacity.QUANTIZATIONS) <= set(quantization.KINDS)
    assert capacity.ORIGINALS == quantization.ORIGINALS


def test_sizes_come_from_the_manifests(sizes):
    assert set(capacity.PLANNED) <= set(sizes[False])
    assert sizes[False]["transcriber"].gpus == 0 and sizes[True]["transcriber"].gpus >= 1
    assert sizes[True]["triton"].gpus >= 1 and sizes[True]["encoder"].gpus == 0
    assert sizes[False]["qdrant"].disk_gib > 0


@pytest.mark.parametrize("gpu", [False, True])
def test_more_load_never_needs_fewer_pods(sizes, gpu):
    base = pods(make_plan(sizes, gpu=gpu))
    more_uploads = pods(make_plan(sizes, gpu=gpu, uploads_per_day=8_000_000))
    longer_videos = pods(make_plan(sizes, gpu=gpu, avg_seconds=120))
    more_searches = pods(make_plan(sizes, gpu=gpu, searches_per_second=16_000))
    for grown in (more_uploads, longer_videos, more_searches):
        assert all(grown[name] >= base[name] for name in base), (base, grown)
    for name in ("encoder", "triton", "transcriber"):
        assert more_uploads[name] > base[name], name
    assert more_uploads["search"] == base["search"]  # uploads cost the search service nothing here
    for name in ("gateway", "search"):
        assert more_searches[name] > base[name], name
    assert more_searches["transcriber"] == base["transcriber"]


def test_a_gpu_needs_fewer_inference_pods_and_the_same_encoder_pods(sizes):
    cpu, gpu = pods(make_plan(sizes)), pods(make_plan(sizes, gpu=True))
    assert gpu["triton"] < cpu["triton"] and gpu["transcriber"] < cpu["transcriber"]
    # frames are decoded and sampled on the encoder's CPUs in both overlays
    assert gpu["encoder"] == cpu["encoder"]
    assert make_plan(sizes, gpu=True).gpu_nodes >= 1 and make_plan(sizes).gpu_nodes == 0


@pytest.mark.parametrize("headroom", [0.0, 0.2, 0.5, 0.8])
@pytest.mark.parametrize("gpu", [False, True])
def test_every_pod_keeps_the_headroom_and_no_pod_is_spare(sizes, headroom, gpu):
    plan = make_plan(sizes, headroom=headroom, gpu=gpu)
    load = plan.load
    video_s = EXAMPLE["uploads_per_day"] * EXAMPLE["avg_seconds"] / 86_400
    frames = video_s * math.ceil(EXAMPLE["avg_seconds"]) / EXAMPLE["avg_seconds"]  # one a second past 16 s
    size = sizes[gpu]
    # the work each service must do, in units of one pod fully busy, written out from the measured costs
    if gpu:
        triton = frames / (measured.TRITON_GPU_FRAMES_PER_S * size["triton"].gpus)
        transcriber = video_s / measured.TRANSCRIBER_GPU_VIDEO_S_PER_S
    else:
        triton = frames * measured.TRITON_CPU_S_PER_FRAME / size["triton"].cpu
        transcriber = video_s * measured.TRANSCRIBER_CPU_S_PER_VIDEO_S / size["transcriber"].cpu
    work = {
        "encoder": video_s * measured.ENCODER_CPU_S_PER_VIDEO_S / size["encoder"].cpu,
        "triton": triton,
        "transcriber": transcriber,
        "gateway": (video_s * measured.GATEWAY_CPU_S_PER_VIDEO_S
                    + load.searches_per_second * measured.GATEWAY_CPU_S_PER_SEARCH) / size["gateway"].cpu,
        "search": load.searches_per_second * measured.SEARCH_CPU_S_PER_SEARCH
        / min(size["search"].cpu, measured.SEARCH_POD_MAX_CORES),
    }
    for name, needed in work.items():
        planned = plan.services[name].pods
        assert needed <= planned * (1 - headroom) + 1e-9, (name, needed, planned)
        assert planned == 1 or needed > (planned - 1) * (1 - headroom), (name, needed, planned)
        assert plan.services[name].busy <= 1 - headroom + 1e-9


def test_more_headroom_more_pods_and_the_autoscalers_room(sizes):
    tight, loose = make_plan(sizes, headroom=0.1), make_plan(sizes, headroom=0.6)
    assert all(loose.services[n].pods >= tight.services[n].pods for n in capacity.PLANNED)
    assert sum(loose.services[n].pods for n in capacity.PLANNED) > sum(tight.services[n].pods for n in capacity.PLANNED)
    for peak in (1.0, 3.0):
        for name, service in make_plan(sizes, peak=peak).services.items():
            if name in capacity.AUTOSCALED:
                assert service.max_pods > service.pods and service.max_pods >= service.pods * peak
            else:
                assert service.max_pods is None


def test_larger_pods_in_the_manifest_mean_fewer_pods(sizes):
    bigger = {**sizes[False], "encoder": dataclasses.replace(sizes[False]["encoder"],
                                                             cpu=sizes[False]["encoder"].cpu * 4)}
    before = make_plan(sizes).services["encoder"].pods
    after = capacity.plan(capacity.Load(**EXAMPLE), bigger).services["encoder"].pods
    assert after <= math.ceil(before / 4) + 1 and after < before


def test_qdrant_holds_two_copies_of_every_video_within_its_pods(sizes):
    for stored, memory in ((1_000_000, None), (10_000_000, None), (10_000_000, 48), (100_000_000, 48)):
        plan = make_plan(sizes, stored_videos=stored, qdrant_memory_gib=memory, qdrant_disk_gib=500)
        q, pod = plan.qdrant, plan.services["qdrant"]
        assert q.shards == pod.pods >= capacity.QDRANT_MIN_PODS and q.replication == 2
        assert q.videos_per_shard * q.shards >= stored
        assert q.ram_gib_per_pod <= pod.size.memory_gib * (1 - plan.load.headroom) + 1e-6
        assert q.disk_gib_per_pod <= pod.size.disk_gib * (1 - plan.load.headroom) + 1e-6
        # the cores given cover every search once, at the engine time of a corpus at least the shard's size
        assert q.measured_up_to >= q.videos_per_shard or plan.warnings
        assert plan.load.searches_per_second * q.engine_ms_per_query / 1000 <= pod.size.cpu * (1 - plan.load.headroom)
    small, large = (make_plan(sizes, stored_videos=n).services["qdrant"].pods for n in (1_000_000, 10_000_000))
    assert large > small
    assert make_plan(sizes, stored_videos=None, uploads_per_day=1000).load.videos_stored == 365_000


@pytest.mark.parametrize("stored, memory, disk", [(1_000_000, None, None), (10_000_000, None, None),
                                                 (10_000_000, 48, 500), (100_000_000, 48, 500)])
def test_quantized_originals_on_disk_need_no_more_qdrant_pods_than_float32_in_memory(sizes, stored, memory, disk):
    def qdrant(kind, originals):
        return make_plan(sizes, stored_videos=stored, qdrant_memory_gib=memory, qdrant_disk_gib=disk,
                         quantization=kind, quantization_originals=originals).services["qdrant"].pods

    float32 = qdrant("none", "memory")
    for kind in capacity.QUANTIZATIONS:
        in_memory = qdrant(kind, "memory")
        if kind != "none":
            # the originals are the same bytes wherever they live: on disk only RAM is saved
            assert qdrant(kind, "disk") <= in_memory and qdrant(kind, "disk") <= float32, kind
    assert qdrant("int8", "disk") < float32  # these pods are full by memory, which the originals were most of
    ram = {(k, o): capacity.qdrant_kib_per_video(capacity.Load(**EXAMPLE, quantization=k, quantization_originals=o))
           for k in capacity.QUANTIZATIONS for o in capacity.ORIGINALS if (k, o) != ("none", "disk")}
    assert all(ram[(k, "disk")][0] < ram[(k, "memory")][0] and ram[(k, "disk")][1] == ram[(k, "memory")][1]
               for k in capacity.QUANTIZATIONS if k != "none")


def test_nodes_hold_the_pods_by_their_requests(sizes):
    for node_cpus, node_memory in ((16, 64), (64, 256)):
        plan = make_plan(sizes, node_cpus=node_cpus, node_memory_gib=node_memory, qdrant_memory_gib=48,
                         qdrant_disk_gib=500)
        for service in plan.services.values():
            assert service.nodes * node_cpus >= service.pods * service.size.cpu - 1e-9, service.name
            assert service.nodes * node_memory >= service.pods * service.size.memory_gib - 1e-9, service.name
        qdrant = plan.services["qdrant"]
        if node_memory < 2 * 48:  # two 48 GiB pods never share a node of less than 96 GiB
            assert qdrant.nodes == qdrant.pods
    gpu = make_plan(sizes, gpu=True)
    gpu_pods = sum(gpu.services[name].pods for name in capacity.ON_GPU)
    assert gpu.gpu_nodes == gpu_pods  # one GPU a node, one GPU a pod
    assert make_plan(sizes, gpu=True, gpus_per_node=8).gpu_nodes < gpu_pods


@pytest.mark.parametrize("change, flag", [
    ({"uploads_per_day": -1}, "--uploads-per-day"),
    ({"searches_per_second": float("nan")}, "--searches-per-second"),
    ({"avg_seconds": 0}, "--avg-seconds"),
    ({"headroom": 1.0}, "--headroom"),
    ({"headroom": -0.1}, "--headroom"),
    ({"peak": 0.5}, "--peak"),
    ({"stored_videos": -5}, "--stored-videos"),
    ({"node_cpus": 0}, "--node-cpus"),
    ({"uploads_per_day": 0, "searches_per_second": 0}, "nothing to plan"),
    ({"quantization": "pq"}, "--quantization must be one of none, int8, binary, binary2"),
    ({"quantization": "INT8"}, "--quantization must be one of"),
    ({"quantization_originals": "ram"}, "--quantization-originals must be memory or disk"),
    ({"quantization": "none", "quantization_originals": "disk"}, "--quantization-originals disk needs a quantized"),
])
def test_bad_input_is_named(sizes, change, flag):
    with pytest.raises(ValueError, match=flag):
        make_plan(sizes, **change)


def test_a_pod_larger_than_a_node_is_refused(sizes):
    with pytest.raises(ValueError, match="does not fit a node"):
        make_plan(sizes, qdrant_memory_gib=100, node_memory_gib=64)


@pytest.mark.parametrize("gpu", [False, True])
def test_the_written_overlay_renders_validates_and_holds_the_plan(sizes, gpu, tmp_path):
    plan = make_plan(sizes, gpu=gpu, qdrant_memory_gib=32, qdrant_disk_gib=400)
    folder = tmp_path / "plan"
    overlay.write(plan, folder, K8S, sizes[gpu], capacity.describe(plan))
    docs = render.render(str(folder), tag="t1", manifests=K8S)
    for doc in docs:
        kubernetes_validate.validate(doc, manifest_checks.KUBERNETES_VERSIONS[-1], strict=True)
    rendered = ("gpu" if gpu else "cpu", docs)
    # the checks every shipped overlay passes (tests/test_deploy_manifests.py)
    manifest_checks.test_every_workload_has_probes_limits_and_a_locked_down_container(rendered)
    manifest_checks.test_every_workload_has_a_disruption_budget(rendered)
    manifest_checks.test_only_the_gateway_is_reachable_from_outside_the_namespace(rendered)
    manifest_checks.test_gpus_are_requested_in_the_gpu_overlay_only_and_only_where_they_help(rendered)
    manifest_checks.test_autoscaling_and_no_secret_in_the_repository(rendered)

    workloads = manifest_checks.workloads(docs)
    for name in ("gateway", "encoder", "triton", "transcriber", "search", "qdrant"):
        assert workloads[name]["spec"]["replicas"] == plan.services[name].pods, name
    for name, scaler in manifest_checks.of_kind(docs, "HorizontalPodAutoscaler").items():
        assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (
            plan.services[name].pods, plan.services[name].max_pods), name
    qdrant = workloads["qdrant"]["spec"]
    requests = qdrant["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert overlay.gibibytes(requests["memory"]) == 32 and overlay.cpu_cores(requests["cpu"]) == plan.services["qdrant"].size.cpu
    assert qdrant["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "400Gi"
    settings = manifest_checks.of_kind(docs, "ConfigMap")["reelvec-settings"]["data"]
    assert settings["REELVEC_QDRANT_REPLICATION_FACTOR"] == "2"
    # the search service keeps the fused vector as the plan sized it
    assert (settings["REELVEC_QUANTIZATION"], settings["REELVEC_QUANTIZATION_ORIGINALS"]) == (
        plan.qdrant.quantization, plan.qdrant.originals) == ("int8", "memory")
    # a CPU cluster builds on the base, not the one-node cpu overlay: uploads shared across nodes
    media = manifest_checks.of_kind(docs, "PersistentVolumeClaim")["reelvec-media"]
    assert media["spec"]["accessModes"] == ["ReadWriteMany"]


def test_shards_past_a_million_videos_get_the_index_that_keeps_their_recall_and_latency(sizes, tmp_path, monkeypatch):
    from reelvec import config
    from services.search.settings import SearchSettings

    small = make_plan(sizes, qdrant_memory_gib=48, qdrant_disk_gib=500)  # the worked example's shards
    assert small.qdrant.videos_per_shard <= measured.LARGE_SHARD and small.qdrant.index == {}
    large = make_plan(sizes, qdrant_memory_gib=400, qdrant_disk_gib=4000, quantization_originals="disk",
                      node_cpus=64, node_memory_gib=512)
    assert large.qdrant.videos_per_shard > measured.LARGE_SHARD
    assert large.qdrant.index == {**measured.LARGE_SHARD_INDEX, "REELVEC_QUANTIZATION_OVERSAMPLING": 1.5}
    assert "REELVEC_MAX_SEGMENT_MB=32768" in capacity.describe(large)
    # the engine time charged is the one measured with that graph, at a corpus at least the shard's size
    assert large.qdrant.measured_up_to >= large.qdrant.videos_per_shard or large.warnings
    assert large.qdrant.engine_ms_per_query > small.qdrant.engine_ms_per_query

    data = {}
    for plan, folder in ((small, tmp_path / "small"), (large, tmp_path / "large")):
        overlay.write(plan, folder, K8S, sizes[False], capacity.describe(plan))
        data[folder.name] = manifest_checks.of_kind(render.render(str(folder), tag="t1", manifests=K8S),
                                                    "ConfigMap")["reelvec-settings"]["data"]
    assert "REELVEC_HNSW_M" not in data["small"]
    for name, value in data["large"].items():  # the search service reads the overlay's settings
        monkeypatch.setenv(name, value)
    settings = config.load(SearchSettings, [])
    assert (settings.hnsw_m, settings.hnsw_ef_construct, settings.hnsw_ef) == (32, 128, 256)
    assert (settings.max_segment_mb, settings.quantization_oversampling) == (32768, 1.5)


def test_the_command_prints_writes_and_render_takes_the_folder(tmp_path):
    folder = tmp_path / "overlay"
    args = ["--uploads-per-day", "200000", "--avg-seconds", "20", "--searches-per-second", "300", "--out", str(folder)]
    planned = subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", "plan", *args, "--json"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert planned.returncode == 0, planned.stderr
    result = json.loads(planned.stdout)
    assert result["load"]["stored_videos"] == 200_000 * capacity.DEFAULT_STORED_DAYS
    rendered = subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", "render", "--overlay", str(folder)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert rendered.returncode == 0, rendered.stderr
    deployments = {d["metadata"]["name"]: d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment"}
    assert deployments["transcriber"]["spec"]["replicas"] == result["services"]["transcriber"]["pods"]
    human = subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", "plan", *args[:6]],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert human.returncode == 0 and "headroom 30%" in human.stdout and "transcriber" in human.stdout
    assert "fused vector int8, originals in memory" in human.stdout
    on_disk = subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", "plan", *args[:6], "--json",
                              "--quantization", "binary", "--quantization-originals", "disk"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert on_disk.returncode == 0, on_disk.stderr
    qdrant = json.loads(on_disk.stdout)["qdrant"]
    assert (qdrant["quantization"], qdrant["originals"]) == ("binary", "disk")
    assert qdrant["ram_kib_per_video"] < result["qdrant"]["ram_kib_per_video"]


def test_a_bad_flag_is_one_line_not_a_traceback():
    result = subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", "plan", "--uploads-per-day", "1000",
                             "--avg-seconds", "30", "--searches-per-second", "10", "--headroom", "1.5"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and result.stderr.startswith("error: --headroom") and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "reelvec.tools.cli", "deploy", "plan", "--uploads-per-day", "1000",
                             "--avg-seconds", "30", "--searches-per-second", "10", "--quantization", "pq"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and result.stderr.startswith("error: --quantization") and "Traceback" not in result.stderr
