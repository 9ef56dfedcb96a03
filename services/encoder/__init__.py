"""Decodes a video, samples frames, embeds them through Triton, and extracts audio features.
Run it with `python -m services.encoder`."""
