"""Likes prediction from the fused embedding and author statistics."""
