"""Source selection as the API serves it: ranking methods (similarity, baselines, learned), the
method registry, evidence files and transfer results. Their evaluation is ``workers.research``."""
