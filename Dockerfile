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
ENTRYPOINT ["loginmetrics"]
CMD ["--help"]
