"""Message size limits shared by servers and channels."""

import os

# Large enough for the biggest unary upload; the gateway enforces the real per-video limit
# (REELVEC_MAX_VIDEO_MB) with a message that says so.
MAX_MESSAGE_BYTES = int(os.environ.get("REELVEC_MAX_MESSAGE_MB", "300")) * 1024 * 1024

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
