"""Offline evaluation of the served representations: copy detection on transformed
copies, category retrieval, clustering. `reelvec evaluate` runs it against a gateway."""
