# taskrec: one image for the API (`taskrec serve`) and the workers (`taskrec worker`).
# CPU torch by default; build the GPU worker image with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TASKREC_DATA_DIR=/data \
    TASKREC_TASKS_ROOT=/tasks

WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX_URL}" torch
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
# The learned ranker's settings and saved evaluation (results/evaluate.sh), and the packaged
# MiniLM's measured transfers, imported as evidence sets on start (with their pinned settings).
COPY results/ranker.json results/matrix.csv results/matrix.sweep.json ./results/
COPY results/matrix-10k.csv results/matrix-10k.sweep.json ./results/
COPY results/calibration-10k.csv results/calibration-10k.sweep.json ./results/
# The library's embeddings the saved evaluation read (1,000 examples, fp32): a read-only seed, so
# those tasks are ready at once (set TASKREC_EMBED_PRECISION=fp32 on GPU workers to use them)
COPY results/embeddings ./results/embeddings
ENV TASKREC_EMBEDDING_SEED_PATHS='["/app/results/embeddings"]'
ENV TASKREC_RANKER_PATH=/app/results/ranker.json \
    TASKREC_EVIDENCE_FILES='{"minilm-1k": "/app/results/matrix.csv", "minilm-10k": "/app/results/matrix-10k.csv", "minilm-10k-calibration": "/app/results/calibration-10k.csv"}'
RUN pip install -e ".[service]"

RUN useradd --create-home --uid 1000 taskrec && mkdir -p /data /tasks && chown taskrec /data
USER taskrec
VOLUME ["/data"]
EXPOSE 8000
CMD ["taskrec", "serve", "--host", "0.0.0.0", "--port", "8000"]
