"""Vector stores behind one interface: `base.VideoStore`. Backends are imported where chosen, so
the embedded default never loads qdrant-client."""
