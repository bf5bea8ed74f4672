"""Batches: many tasks, or a source × target sweep, submitted as one group of child jobs."""
