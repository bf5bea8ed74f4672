from __future__ import annotations

from service.errors import Conflict


class EmbeddingsNotReady(Conflict):
    code = "embeddings_not_ready"
    description = "The task's embeddings are not ready yet"
