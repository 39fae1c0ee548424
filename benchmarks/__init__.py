"""The benchmark harness: ``python -m benchmarks.run [--quick]`` (``make bench``)."""
