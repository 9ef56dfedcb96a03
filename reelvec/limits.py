"""Size limits shared by servers and channels: gRPC messages and uploaded videos."""

from reelvec import errors
from reelvec.config import ServerSettings

# Room in a request beside its video (caption, hashtags, metadata), so that the services' own check
# of max_video_mb, with a message that names the setting, answers before gRPC's size cap does.
_HEADROOM_MB = 44


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


def server_options(max_video_mb: int) -> list[tuple[str, int]]:
    """A server takes requests of up to its largest video plus the headroom."""
    return [("grpc.max_receive_message_length", (max_video_mb + _HEADROOM_MB) * 2**20)]


# Channels send whatever the caller gives (the server enforces its own cap) and take answers up to
# what a server with the default video limit takes.
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", (ServerSettings.max_video_mb + _HEADROOM_MB) * 2**20),
    ("grpc.max_send_message_length", -1),
]
