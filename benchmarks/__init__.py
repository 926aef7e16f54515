"""wsgisse's benchmark suite: ``python -m benchmarks`` (see README.rst)."""
