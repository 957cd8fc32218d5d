"""Throughput, latency and memory benchmarks of tuscam against its tus peers (`python -m bench`)."""
