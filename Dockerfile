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
# The project's measured transfers, the learned ranker's starting evidence (results/evaluate.sh).
COPY results/ranker.json ./results/ranker.json
ENV TASKREC_RANKER_PATH=/app/results/ranker.json
RUN pip install -e ".[service]"

RUN useradd --create-home --uid 1000 taskrec && mkdir -p /data /tasks && chown taskrec /data
USER taskrec
VOLUME ["/data"]
EXPOSE 8000
CMD ["taskrec", "serve", "--host", "0.0.0.0", "--port", "8000"]
