"""Task embeddings: the job that computes them with the engine, their rows and artefacts."""
