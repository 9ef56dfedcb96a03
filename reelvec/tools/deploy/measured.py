"""The measured numbers the capacity model (capacity.py) rests on, each from BENCHMARKS.md. The
section a number comes from is named beside it; where BENCHMARKS.md holds no direct number, the
derivation from the ones it holds is written out here and in docs/capacity.md. Where a measurement
gives a range, its slower end is taken (a plan should hold on a bad day too); where runs of older
code differ, today's code's run is taken."""

# -- Ingest on CPU: CPU seconds per second of uploaded video, by process --------------------------
# "Changes and what they did", row "Copy detection's frame descriptors" (commit 6cbda2c, frames at
# about one a second): encoder 0.041, triton 0.027, transcriber 0.147 CPU-s per video-s. The latest
# whole-stack run of today's code; session 7's run (16 frames a clip) gave 0.029 / 0.016 / 0.088.
ENCODER_CPU_S_PER_VIDEO_S = 0.041
TRANSCRIBER_CPU_S_PER_VIDEO_S = 0.147
TRITON_CPU_S_PER_VIDEO_S_IN_INGEST = 0.027
# "Where the time goes" > "Ingest", session 7's full run: gateway 0.003 CPU-s per video-s.
GATEWAY_CPU_S_PER_VIDEO_S = 0.003

# Triton's work follows the frames sampled, not the seconds of video, so the ingest figure above is
# turned into CPU per frame. The ingest suite: 13 clips, 124 s ("Latest numbers", Ingest row), one
# of them 36 s and the others within 16 s ("Changes", the same row), sampled at
# reelvec.frames.count_for: 12 x 16 + 36 = 228 frames. 0.027 x 124 / 228 = 14.7 CPU-ms a frame,
# more than the 9.4-10.4 of Triton alone ("Latest numbers", Visual encoder row): the stack's gRPC
# and the Python backend's hand-offs are in it.
INGEST_SUITE_VIDEO_S = 124.0
INGEST_SUITE_FRAMES = 12 * 16 + 36
TRITON_CPU_S_PER_FRAME = TRITON_CPU_S_PER_VIDEO_S_IN_INGEST * INGEST_SUITE_VIDEO_S / INGEST_SUITE_FRAMES

# -- Ingest on a GPU ("GPU (session 8, a lent H200)") -------------------------------------------------
# "Visual encoder": CUDA float16 at 16 frames a call (one clip, no batching), the slower run: 2,136
# frames/s. PyTorch eager, not Triton: Triton's GPU path has not run yet (BENCHMARKS.md says why).
TRITON_GPU_FRAMES_PER_S = 2136.0
# "Ingest's model work": the transcriber with 4 transcriptions at once (the gpu overlay's
# REELVEC_MAX_TRANSCRIPTIONS=4), 86.3x real time on one GPU. One run; one at a time gave 50.4-53.8x.
TRANSCRIBER_GPU_VIDEO_S_PER_S = 86.3
# The same section: with Whisper on the GPU, the transcriber's CPU work besides Whisper (audio
# decoding, VAD, text embedding) is "about 0.01" CPU-s per video-s ("Where the time goes" too).
TRANSCRIBER_GPU_CPU_S_PER_VIDEO_S = 0.01

# -- Search -----------------------------------------------------------------------------------------
# "Where the time goes" > "Gateway Search": paced at 1,000 requests/s (the rate at which p99 stayed
# under 50 ms) a Search cost 1.80-1.85 CPU-ms in every process together, client included. Only
# the saturated runs split it by process: search 0.34, gateway 0.28, client 0.13 of 0.75 ms (the
# paragraph "The arithmetic of what is left"). The paced cost is split in those proportions:
# search 1.85 x 0.34 / 0.75 = 0.84 ms, gateway 1.85 x 0.28 / 0.75 = 0.69 ms.
STACK_CPU_S_PER_SEARCH_PACED = 1.85e-3
_SATURATED_SPLIT = {"search": 0.34, "gateway": 0.28, "client": 0.13}
_SATURATED_TOTAL = sum(_SATURATED_SPLIT.values())
SEARCH_CPU_S_PER_SEARCH = STACK_CPU_S_PER_SEARCH_PACED * _SATURATED_SPLIT["search"] / _SATURATED_TOTAL
GATEWAY_CPU_S_PER_SEARCH = STACK_CPU_S_PER_SEARCH_PACED * _SATURATED_SPLIT["gateway"] / _SATURATED_TOTAL
# The same section: the search service answers on one thread ("the search is the one serial
# thread"), so a search pod uses at most one core whatever it is given.
SEARCH_POD_MAX_CORES = 1.0

# The engine's time per query, one query at a time on one thread, by the number of vectors searched
# ("Latest numbers", Search rows, default graph, slower end): 10k 3,257 QPS, 100k 1,898, 1M 543.
# A Qdrant shard of that many videos pays this per query reaching it. Past LARGE_SHARD, the index
# below is the one measured, at hnsw_ef 256 ("At 2M videos", run 2: 482 QPS; "At 4M videos", run 2,
# oversampling 1.5: 295), on shards of 2-3 segments.
ENGINE_S_PER_QUERY = {10_000: 1 / 3257, 100_000: 1 / 1898, 1_000_000: 1 / 543, 2_000_000: 1 / 482,
                      4_000_000: 1 / 295}
# Past a million videos a shard's recall@10 falls under 0.95 on the default graph (0.942-0.955 at
# 1M); the denser graph and a wider search keep it: 0.973 at 2M and 4M at hnsw_ef 256 ("At 4M
# videos", run 2; hnsw_ef 512 passed 10 ms at p99 there). Segments up to 32 GB: a query searches
# every segment, and Qdrant's default size (256 MB per CPU) left 6 at 300k videos, each query
# costing 2x the CPU of 2 segments at hnsw_ef 128, 4x at 512 ("Segments"); 32 GB holds 2.2M videos
# of the four vectors, so 10M is 5 segments. The plan sets these for shards that large.
LARGE_SHARD = 1_000_000
LARGE_SHARD_INDEX = {"REELVEC_HNSW_M": 32, "REELVEC_HNSW_EF_CONSTRUCT": 128, "REELVEC_HNSW_EF": 256,
                     "REELVEC_MAX_SEGMENT_MB": 32768}
# int8 rescoring 1.5 rows a hit instead of 2 kept recall at 4M (0.973 both) and reads a quarter fewer
# originals from disk ("At 4M videos", run 2).
LARGE_SHARD_INT8_OVERSAMPLING = 1.5

# -- Storage per video ("Copy detection" > "Bytes per video-minute" and runs 4 and 5) ------------------
# The video shard (four named vectors, their index, the payload): 19.8 KiB a video on disk.
VIDEO_KIB_PER_VIDEO = 19.8
# The fused vector is sized by its quantization below, so it comes out of the video shard: every
# kind keeps the float32 originals, 7,436 B a video (4 bytes x 1859, "Quantized search"). What is
# left is the visual, text and audio vectors, the payload and the fused vector's graph (counted
# again below: a few hundred bytes too many), all of it counted as resident, which is where both
# engines keep vectors the setting does not place.
FUSED_ORIGINALS_BYTES_PER_VIDEO = 7436
VIDEO_OTHER_KIB_PER_VIDEO = VIDEO_KIB_PER_VIDEO - FUSED_ORIGINALS_BYTES_PER_VIDEO / 1024
# The frame descriptors, 256-d, with the track points: 172.4 KiB per video-minute on disk
# ("Copy detection", frame descriptors at 256-d: bench search's frames shard over 100 video-
# minutes). In RAM: the int8 copy the frame search walks, its graph and indexes, 21.7 KiB a minute
# (the same run, RAM with the originals on disk). The float32 rows are counted on disk, as a query
# reads only its candidates' rows; both engines leave them mapped in the page cache when memory
# allows (82.9 KiB a minute), which docs/capacity.md says the plan does not reserve.
FRAMES_DISK_KIB_PER_MINUTE = 172.4
FRAMES_RAM_KIB_PER_MINUTE = 21.7

# -- The fused vector by quantization ("Quantized search", the 100,000 rows) --------------------------
# Bytes a video: RAM with the float32 originals in memory, RAM with them on disk, disk. The 100k
# rows, not the 10k ones: the shard's fixed files weigh less per video the larger the corpus, and
# a plan is for corpora far past both (the 10k rows are at most 62 B a video larger). The binary
# rows at 4x and 8x rescoring hold the same files. `none` with its originals on disk was not
# measured (its graph walk would read them from disk at every hop): None. At 1M ("At 1M videos")
# int8 and binary with the originals on disk took 2,140 and 505 B: the 100k figures hold.
FUSED_BYTES_PER_VIDEO = {
    "none": (7691, None, 7835),
    "int8": (9567, 2131, 9712),
    "binary": (7937, 501, 8081),
    "binary2": (8176, 740, 8321),
}
