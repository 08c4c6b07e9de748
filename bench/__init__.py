"""Benchmarks: xesync at scale against a TMSXE-style poller on the lab (see bench/README.md)."""
