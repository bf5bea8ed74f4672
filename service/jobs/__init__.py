"""Background jobs: the job row is the source of truth; threads or Celery workers run them."""
