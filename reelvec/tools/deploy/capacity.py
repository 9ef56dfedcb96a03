"""The capacity model behind `reelvec deploy plan`: how many pods of each service a load needs, from
the per-pod costs measured in BENCHMARKS.md (measured.py) and the CPU, memory and GPU the manifests
request for each pod (docs/capacity.md explains every step with a worked example).

A pod is planned to run at most (1 - headroom) busy at the given rates. The rates are what must be
served: uploads per day is spread evenly over the day, so a busier hour is planned for by passing
its rate. The services with an autoscaler (gateway, encoder, Triton) start at the planned count and
may grow to `peak` times it; the others (transcriber, search, Qdrant) stay at the planned count.
"""

import dataclasses
import math

from reelvec.frames import count_for
from reelvec.tools.deploy import measured

SECONDS_PER_DAY = 86_400
KIB_PER_GIB = 1024 * 1024
AUTOSCALED = ("gateway", "encoder", "triton")
PLANNED = ("gateway", "encoder", "triton", "transcriber", "search", "qdrant")
ON_GPU = ("triton", "transcriber")  # what the gpu overlay puts on nvidia.com/gpu
# Qdrant: two copies of every shard (deploy/k8s/base/settings.yaml) and at least three pods, so that
# one pod can go (a drain, its disruption budget) and the cluster's consensus still has a majority.
QDRANT_REPLICATION = 2
QDRANT_MIN_PODS = 3
DEFAULT_STORED_DAYS = 365
# The fused vector's quantization and where its float32 originals live: the kinds whose RAM and disk
# BENCHMARKS.md measured, and the search service's default (services/search/settings.py; a test
# holds the two together, as the overlay hands the plan's choice to the service).
QUANTIZATIONS = tuple(measured.FUSED_BYTES_PER_VIDEO)
MEMORY, DISK = "memory", "disk"
ORIGINALS = (MEMORY, DISK)
DEFAULT_QUANTIZATION, DEFAULT_ORIGINALS = "int8", MEMORY


@dataclasses.dataclass(frozen=True)
class PodSize:
    """What a pod requests (the scheduler reserves it), and a StatefulSet pod's volume."""
    cpu: float  # cores
    memory_gib: float
    gpus: int = 0
    disk_gib: float = 0.0


@dataclasses.dataclass(frozen=True)
class Load:
    uploads_per_day: float
    avg_seconds: float
    searches_per_second: float
    gpu: bool = False
    headroom: float = 0.3
    peak: float = 2.0
    stored_videos: int | None = None  # None: DEFAULT_STORED_DAYS of uploads
    node_cpus: float = 16.0
    node_memory_gib: float = 64.0
    gpus_per_node: int = 1
    qdrant_memory_gib: float | None = None  # None: what the manifest requests
    qdrant_disk_gib: float | None = None
    quantization: str = DEFAULT_QUANTIZATION
    quantization_originals: str = DEFAULT_ORIGINALS

    def check(self) -> None:
        """ValueError naming the first value that makes no plan."""
        for name in ("uploads_per_day", "searches_per_second"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"--{_flag(name)} must be a number >= 0, got {getattr(self, name)!r}")
        if self.uploads_per_day == 0 and self.searches_per_second == 0:
            raise ValueError("nothing to plan: --uploads-per-day and --searches-per-second are both 0")
        if not math.isfinite(self.avg_seconds) or self.avg_seconds <= 0:
            raise ValueError(f"--avg-seconds must be a video length in seconds > 0, got {self.avg_seconds!r}")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"--headroom is the share of each pod kept free, from 0 to below 1 "
                             f"(0.3: pods at most 70% busy), got {self.headroom!r}")
        if not math.isfinite(self.peak) or self.peak < 1:
            raise ValueError(f"--peak must be at least 1 (the autoscalers' maximum over the plan), got {self.peak!r}")
        if self.stored_videos is not None and self.stored_videos < 0:
            raise ValueError(f"--stored-videos must be >= 0, got {self.stored_videos!r}")
        for name in ("node_cpus", "node_memory_gib", "gpus_per_node", "qdrant_memory_gib", "qdrant_disk_gib"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"--{_flag(name)} must be > 0, got {value!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"--quantization must be one of {', '.join(QUANTIZATIONS)} (the kinds whose RAM and "
                             f"disk BENCHMARKS.md measured, \"Quantized search\"), got {self.quantization!r}")
        if self.quantization_originals not in ORIGINALS:
            raise ValueError(f"--quantization-originals must be {MEMORY} or {DISK}, got {self.quantization_originals!r}")
        if measured.FUSED_BYTES_PER_VIDEO[self.quantization][ORIGINALS.index(self.quantization_originals)] is None:
            raise ValueError(f"--quantization-originals {DISK} needs a quantized kind: with --quantization "
                             f"{self.quantization} the graph walk reads the originals at every hop, and no such "
                             f"store was measured")

    @property
    def video_seconds_per_second(self) -> float:
        return self.uploads_per_day * self.avg_seconds / SECONDS_PER_DAY

    @property
    def videos_stored(self) -> int:
        if self.stored_videos is not None:
            return self.stored_videos
        return math.ceil(self.uploads_per_day * DEFAULT_STORED_DAYS)


@dataclasses.dataclass
class ServicePlan:
    name: str
    pods: int
    max_pods: int | None  # the autoscaler's maximum; None without one
    per_pod: str  # what one pod does, in words, for the printout
    busy: float  # how busy the planned pods are at the given rates, 0..1
    size: PodSize
    nodes: int = 0


@dataclasses.dataclass
class QdrantPlan:
    shards: int
    replication: int
    videos_per_shard: int
    ram_gib_per_pod: float
    disk_gib_per_pod: float
    engine_ms_per_query: float
    measured_up_to: int  # the corpus size whose engine time is used; below the shard size: extrapolated
    quantization: str
    originals: str
    ram_kib_per_video: float  # one copy of a video, its frames included
    disk_kib_per_video: float
    index: dict[str, float]  # the search service's index settings (graph, segments) for shards this large; empty: its defaults


@dataclasses.dataclass
class Plan:
    load: Load
    services: dict[str, ServicePlan]
    qdrant: QdrantPlan
    cpu_nodes: int
    gpu_nodes: int
    cpu_nodes_at_max: int
    warnings: list[str]

    def as_dict(self) -> dict:
        return {
            "load": {**dataclasses.asdict(self.load), "video_seconds_per_second": self.load.video_seconds_per_second,
                     "stored_videos": self.load.videos_stored},
            "services": {n: {**dataclasses.asdict(s), "size": dataclasses.asdict(s.size)} for n, s in self.services.items()},
            "qdrant": dataclasses.asdict(self.qdrant),
            "nodes": {"cpu": self.cpu_nodes, "gpu": self.gpu_nodes, "cpu_at_autoscaler_max": self.cpu_nodes_at_max},
            "warnings": self.warnings,
        }


def _flag(name: str) -> str:
    return name.replace("_", "-")


def pods_for(demand: float, headroom: float) -> int:
    """Pods for `demand` pods' worth of work at 100% busy, each kept (1 - headroom) busy at most."""
    # a hair below the integer: 0.7 / (1 - 0.3) must give 1 pod, not 2 from rounding
    return max(1, math.ceil(demand / (1 - headroom) - 1e-9))


def frames_per_video(avg_seconds: float) -> int:
    """What the encoder samples from a clip of that length, and Triton embeds."""
    return count_for(avg_seconds)


def _engine_time(videos_per_shard: int) -> tuple[float, int]:
    """Engine seconds per query on a shard, from the smallest measured corpus at least that large;
    past the largest measured one, that one's time (a lower bound: flagged by the caller)."""
    sizes = sorted(measured.ENGINE_S_PER_QUERY)
    size = next((s for s in sizes if s >= videos_per_shard), sizes[-1])
    return measured.ENGINE_S_PER_QUERY[size], size


def qdrant_kib_per_video(load: Load) -> tuple[float, float]:
    """RAM and disk one copy of an average video takes in Qdrant: the fused vector as quantized, the
    rest of the video shard, the frame descriptors for its length."""
    in_memory, on_disk, fused_disk = measured.FUSED_BYTES_PER_VIDEO[load.quantization]
    fused_ram = in_memory if load.quantization_originals == MEMORY else on_disk
    minutes = load.avg_seconds / 60
    ram = measured.VIDEO_OTHER_KIB_PER_VIDEO + fused_ram / 1024 + measured.FRAMES_RAM_KIB_PER_MINUTE * minutes
    disk = measured.VIDEO_OTHER_KIB_PER_VIDEO + fused_disk / 1024 + measured.FRAMES_DISK_KIB_PER_MINUTE * minutes
    return ram, disk


def plan(load: Load, sizes: dict[str, PodSize]) -> Plan:
    """`sizes`: the manifests' request per pod of each service in PLANNED and the regressor."""
    load.check()
    missing = set(PLANNED) - set(sizes)
    if missing:
        raise ValueError(f"the manifests give no resources for {', '.join(sorted(missing))}")
    video_s = load.video_seconds_per_second
    searches = load.searches_per_second
    services: dict[str, ServicePlan] = {}
    warnings: list[str] = []

    def add(name: str, demand: float, per_pod: str) -> None:
        pods = pods_for(demand, load.headroom)
        top = max(pods + 1, math.ceil(pods * load.peak)) if name in AUTOSCALED else None
        services[name] = ServicePlan(name, pods, top, per_pod, demand / pods, sizes[name])

    encoder = sizes["encoder"].cpu / measured.ENCODER_CPU_S_PER_VIDEO_S
    add("encoder", video_s / encoder, f"{encoder:.1f} video-s/s on {_cores(sizes['encoder'].cpu)}")

    frames_per_second_of_video = frames_per_video(load.avg_seconds) / load.avg_seconds
    frames = video_s * frames_per_second_of_video
    if load.gpu:
        triton = measured.TRITON_GPU_FRAMES_PER_S * max(1, sizes["triton"].gpus)
        add("triton", frames / triton, f"{triton:,.0f} frames/s on {max(1, sizes['triton'].gpus)} GPU")
    else:
        triton = sizes["triton"].cpu / measured.TRITON_CPU_S_PER_FRAME
        add("triton", frames / triton, f"{triton:.0f} frames/s on {_cores(sizes['triton'].cpu)}")

    if load.gpu:
        transcriber = min(measured.TRANSCRIBER_GPU_VIDEO_S_PER_S * max(1, sizes["transcriber"].gpus),
                          sizes["transcriber"].cpu / measured.TRANSCRIBER_GPU_CPU_S_PER_VIDEO_S)
        where = f"{max(1, sizes['transcriber'].gpus)} GPU"
    else:
        transcriber = sizes["transcriber"].cpu / measured.TRANSCRIBER_CPU_S_PER_VIDEO_S
        where = _cores(sizes["transcriber"].cpu)
    add("transcriber", video_s / transcriber, f"{transcriber:.1f} video-s/s on {where}")

    gateway_cores = video_s * measured.GATEWAY_CPU_S_PER_VIDEO_S + searches * measured.GATEWAY_CPU_S_PER_SEARCH
    add("gateway", gateway_cores / sizes["gateway"].cpu,
        f"{1 / measured.GATEWAY_CPU_S_PER_SEARCH * sizes['gateway'].cpu:,.0f} searches/s on "
        f"{_cores(sizes['gateway'].cpu)} (uploads cost it little)")

    search_cores = min(sizes["search"].cpu, measured.SEARCH_POD_MAX_CORES)
    search = search_cores / measured.SEARCH_CPU_S_PER_SEARCH
    add("search", searches / search, f"{search:,.0f} searches/s on {_cores(search_cores)}")

    qdrant = _qdrant(load, sizes["qdrant"], services, warnings)

    regressor = sizes.get("regressor")
    fixed = [(regressor, 1)] if regressor else []  # not sized: no Predict rate is planned (docs/capacity.md)
    cpu_pool = [(s.size, s.pods) for n, s in services.items() if not (load.gpu and n in ON_GPU)] + fixed
    cpu_pool_max = [(s.size, s.max_pods or s.pods) for n, s in services.items()
                    if not (load.gpu and n in ON_GPU)] + fixed
    for service in services.values():
        on_gpu = load.gpu and service.name in ON_GPU
        _check_fits(service, load, on_gpu)
        service.nodes = _nodes([(service.size, service.pods)], load, on_gpu)
    gpu_pool = [(s.size, s.pods) for n, s in services.items() if load.gpu and n in ON_GPU]
    return Plan(load, services, qdrant, _nodes(cpu_pool, load, False),
                _nodes(gpu_pool, load, True) if gpu_pool else 0, _nodes(cpu_pool_max, load, False), warnings)


def _qdrant(load: Load, manifest: PodSize, services: dict[str, ServicePlan], warnings: list[str]) -> QdrantPlan:
    """Shards and pods by memory and disk, then the cores each pod needs for the searches.

    The search service creates its collections without a shard count, so Qdrant makes one shard per
    pod present at creation: shards = pods. Every search reaches every shard once (one of its
    copies), so with R copies over as many pods as shards, each pod answers every search once."""
    ram_kib, disk_kib = qdrant_kib_per_video(load)
    memory = load.qdrant_memory_gib or manifest.memory_gib
    disk = load.qdrant_disk_gib or manifest.disk_gib
    if disk <= 0:
        raise ValueError("the manifests give Qdrant no volume size: pass --qdrant-disk-gib")
    videos = load.videos_stored
    copies = QDRANT_REPLICATION * videos
    by_memory = copies * ram_kib / KIB_PER_GIB / memory
    by_disk = copies * disk_kib / KIB_PER_GIB / disk
    pods = max(QDRANT_MIN_PODS, pods_for(max(by_memory, by_disk), load.headroom))
    per_shard = math.ceil(videos / pods)
    engine_s, measured_size = _engine_time(per_shard)
    if per_shard > measured_size:
        warnings.append(f"Qdrant shards of {per_shard:,} videos are past the largest corpus measured "
                        f"({measured_size:,}): the engine time used is that corpus's, a lower bound")
    cores_needed = load.searches_per_second * engine_s / (1 - load.headroom)
    cores = manifest.cpu if cores_needed <= manifest.cpu else float(math.ceil(cores_needed))
    size = PodSize(cores, memory, 0, disk)
    busy = max(by_memory / pods, by_disk / pods, load.searches_per_second * engine_s / cores)
    services["qdrant"] = ServicePlan(
        "qdrant", pods, None,
        f"{memory:g} GiB RAM, {disk:g} GiB disk, {_cores(cores)}: {per_shard:,} videos a shard", busy, size)
    return QdrantPlan(pods, QDRANT_REPLICATION, per_shard,
                      QDRANT_REPLICATION * per_shard * ram_kib / KIB_PER_GIB,
                      QDRANT_REPLICATION * per_shard * disk_kib / KIB_PER_GIB, engine_s * 1000, measured_size,
                      load.quantization, load.quantization_originals, ram_kib, disk_kib,
                      _large_shard_index(load) if per_shard > measured.LARGE_SHARD else {})


def _large_shard_index(load: Load) -> dict[str, float]:
    index = dict(measured.LARGE_SHARD_INDEX)
    if load.quantization == "int8":
        index["REELVEC_QUANTIZATION_OVERSAMPLING"] = measured.LARGE_SHARD_INT8_OVERSAMPLING
    return index


def pods_per_node(size: PodSize, load: Load, gpu: bool) -> int:
    """How many such pods one node holds by their requests (0: not one)."""
    fits = [load.node_cpus / size.cpu if size.cpu else math.inf,
            load.node_memory_gib / size.memory_gib if size.memory_gib else math.inf]
    if gpu:
        fits.append(load.gpus_per_node / max(1, size.gpus))
    return math.floor(min(fits) + 1e-9)


def _nodes(pods: list[tuple[PodSize, int]], load: Load, gpu: bool) -> int:
    """Nodes for the pods when each service's pods get nodes of their own: what the scheduler can
    always achieve; mixing services on nodes may save a few."""
    return sum(math.ceil(n / max(1, pods_per_node(size, load, gpu))) for size, n in pods if n)


def _check_fits(service: ServicePlan, load: Load, gpu: bool) -> None:
    size = service.size
    if pods_per_node(size, load, False) < 1:
        raise ValueError(f"a {service.name} pod ({_cores(size.cpu)}, {size.memory_gib:g} GiB) does not fit a node of "
                         f"{load.node_cpus:g} cores and {load.node_memory_gib:g} GiB: pass larger --node-cpus or "
                         f"--node-memory-gib" + (", or smaller --qdrant-memory-gib" if service.name == "qdrant" else ""))
    if gpu and max(1, size.gpus) > load.gpus_per_node:
        raise ValueError(f"a {service.name} pod wants {size.gpus} GPUs, a node has {load.gpus_per_node}")


def _cores(cpu: float) -> str:
    return f"{cpu:g} CPU" if cpu == 1 else f"{cpu:g} CPUs"


def describe(plan: Plan) -> str:
    """The plan as `reelvec deploy plan` prints it."""
    load = plan.load
    lines = [
        f"capacity plan ({'GPU' if load.gpu else 'CPU'} overlay): {load.uploads_per_day:,.0f} uploads a day of "
        f"{load.avg_seconds:g} s ({load.video_seconds_per_second:,.1f} video-s/s, "
        f"{frames_per_video(load.avg_seconds)} frames a video), {load.searches_per_second:,.0f} searches/s, "
        f"{load.videos_stored:,} videos stored",
        f"headroom {load.headroom:.0%}: every pod planned at most {1 - load.headroom:.0%} busy; autoscalers "
        f"may grow to {load.peak:g}x; nodes of {load.node_cpus:g} CPUs, {load.node_memory_gib:g} GiB"
        + (f", {load.gpus_per_node} GPU" if load.gpu else ""),
        "",
        f"{'service':<12} {'pods':>5} {'hpa max':>8} {'busy':>5} {'nodes':>6}  one pod (measured: BENCHMARKS.md)",
    ]
    for service in plan.services.values():
        top = str(service.max_pods) if service.max_pods else "-"
        lines.append(f"{service.name:<12} {service.pods:>5} {top:>8} {service.busy:>5.0%} {service.nodes:>6}  "
                     f"{service.per_pod}")
    q = plan.qdrant
    lines += [
        "",
        f"qdrant: {q.shards} shards (one per pod, Qdrant's default) x {q.replication} copies, "
        f"{q.videos_per_shard:,} videos a shard; per pod {q.ram_gib_per_pod:,.1f} GiB RAM and "
        f"{q.disk_gib_per_pod:,.1f} GiB disk; {q.engine_ms_per_query:.2f} ms of engine per search and shard "
        f"(measured at {q.measured_up_to:,} vectors)",
        f"qdrant: fused vector {q.quantization}, originals {'in memory' if q.originals == MEMORY else 'on disk'}: "
        f"{q.ram_kib_per_video:.1f} KiB RAM and {q.disk_kib_per_video:.1f} KiB disk a video, frames included",
        *([f"qdrant: shards past {measured.LARGE_SHARD:,} videos get the denser graph, a wider search and "
           "larger segments (recall@10 0.95 and over, each query searching few segments): "
           + ", ".join(f"{k}={v}" for k, v in q.index.items())] if q.index else []),
        "regressor: not sized (no Predict rate planned): the manifests' replicas",
        f"nodes: {plan.cpu_nodes} CPU" + (f" + {plan.gpu_nodes} GPU" if load.gpu else "")
        + f" at the planned pods, {plan.cpu_nodes_at_max} CPU at the autoscalers' maximum"
        " (each service on nodes of its own)",
    ]
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)
