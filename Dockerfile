# The loginmetrics image: one command line, every role chosen by the arguments
# (generate, worker, aggregate, print, run, topics). docker-compose.yml runs each role as a
# service. Dependencies come from the same lock file as every other install (constraints.txt).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 loginmetrics

USER loginmetrics
# `loginmetrics health` checks /healthz of this container's process on LOGINMETRICS_METRICS_PORT.
# Kubernetes ignores HEALTHCHECK and uses the probes of deploy/k8s instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["loginmetrics", "health"]
ENTRYPOINT ["loginmetrics"]
CMD ["--help"]
