"""Size limits shared by servers and channels: gRPC messages and uploaded videos."""

import os

from reelvec import errors

# Large enough for the biggest unary upload; the gateway enforces the real per-video limit
# (REELVEC_MAX_VIDEO_MB) with a message that says so.
MAX_MESSAGE_BYTES = int(os.environ.get("REELVEC_MAX_MESSAGE_MB", "300")) * 1024 * 1024


def check_video(data: bytes, max_video_mb: int) -> None:
    """The same answer on every service: INVALID_ARGUMENT, for the video is what needs fixing."""
    if not data:
        raise errors.InvalidInput("the video is empty (0 bytes): send the file's bytes in `video`")
    check_video_size(len(data), max_video_mb)


def check_video_size(size: int, max_video_mb: int) -> None:
    """`size`: the bytes so far, also of a stream that is still coming."""
    if size > max_video_mb * 2**20:
        raise errors.InvalidInput(f"the video is over the {max_video_mb} MiB limit (REELVEC_MAX_VIDEO_MB): "
                                  f"{size / 2**20:.1f} MiB")


DEFAULT_K, MAX_K = 10, 100  # neighbours a search or a prediction returns


def check_k(k: int) -> int:
    """0 (unset) takes DEFAULT_K; outside 0..MAX_K is INVALID_ARGUMENT, never a silent cap."""
    if k < 0 or k > MAX_K:
        raise errors.InvalidInput(f"k must be between 1 and {MAX_K}, got {k}")
    return k or DEFAULT_K


GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
