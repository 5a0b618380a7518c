# The loginmetrics image: one command line, every role chosen by the arguments
# (generate, worker, aggregate, print, run, topics). docker-compose.yml runs each role as a
# service; deploy/k8s passes the role as the container's args, so tini stays PID 1 there too.
# The base is pinned to a patch release: a rebuild gets the same Python until this line changes.
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini (Debian's) runs as PID 1: it forwards SIGTERM and SIGINT to loginmetrics, whose
# supervisor drains and stops its own processes, and it reaps any orphan that the kernel hands
# to PID 1 (a Python process as PID 1 would leave them as zombies, and would ignore a SIGTERM
# for which it has no handler yet, during start-up).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 loginmetrics \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin loginmetrics

WORKDIR /app

# The dependencies in their own layer, from the lock (constraints.txt) and pyproject's list
# only: a change of the source reuses this layer instead of reinstalling them all.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself, without touching the dependencies installed above.
COPY . .
RUN pip install --no-deps -c constraints.txt .

# Numeric, so that Kubernetes' runAsNonRoot can verify it is not root.
USER 10001:10001
# `loginmetrics health` checks /healthz of this container's process on LOGINMETRICS_METRICS_PORT.
# Kubernetes ignores HEALTHCHECK and uses the probes of deploy/k8s instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["loginmetrics", "health"]
ENTRYPOINT ["tini", "--", "loginmetrics"]
CMD ["--help"]
