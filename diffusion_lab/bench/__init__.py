"""Benchmark helpers (``scripts/benchmark.py``, ``scripts/sampler_report.py``): side-by-side
figures against diffusers, which is imported lazily (``pip install -e '.[bench]'``)."""
