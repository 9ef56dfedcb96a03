"""The search service: named vectors of videos in Qdrant (embedded or a server), k-NN with filters,
originality, near-duplicates and hashtag suggestions. Run it with `python -m services.search`."""
