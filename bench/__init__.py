"""Benchmarks: reelvec's paths side by side with the baseline a user would otherwise pick, in one run.
`make bench` (python -m bench) prints the tables and writes bench/results/latest.json."""
