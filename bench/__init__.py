"""Benchmarks of the transfer engine (run from the repository root, see bench/README.md)."""
