"""The implementations users would reach for instead of reelvec's, run on the same weights and inputs so
that a benchmark compares engines, not models."""
