"""taskrec engine: task data, encoders, heads, fine-tuning, transfer and task embeddings.

Nothing here imports FastAPI; the service calls these functions from its workers.
"""
