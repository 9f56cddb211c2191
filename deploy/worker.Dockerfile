# Fleetwright worker image: Debian's Chromium and fonts, Fleetwright from requirements.lock, a
# non-root user, a Prefect process worker as the entry point.
#
#   docker build -f deploy/worker.Dockerfile -t fleetwright-worker .     (from the repository root)
#
# The worker polls the work pool named by FLEETWRIGHT_WORK_POOL (default "fleetwright") at
# PREFECT_API_URL; each flow run is a subprocess in this container. The same image runs the
# warm worker (`fleetwright worker start`) and one-off commands (`fleetwright ...`).
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 (bookworm's python3), Chromium, fonts for Latin, CJK and emoji pages, tini as PID 1
# so the worker's flow-run subprocesses and browsers are reaped and signalled.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates tini \
        chromium fonts-liberation fonts-dejavu-core fonts-noto-core fonts-noto-cjk \
        fonts-noto-color-emoji \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin fleetwright

# Locked dependencies first (a layer that changes only with requirements.lock), then the
# project itself without re-resolving.
RUN python3 -m venv /opt/fleetwright
ENV PATH=/opt/fleetwright/bin:$PATH
COPY requirements.lock /src/requirements.lock
RUN pip install --upgrade pip && pip install -r /src/requirements.lock
COPY . /src
RUN pip install --no-deps /src && rm -rf /src

ENV FLEETWRIGHT_CHROMIUM_EXECUTABLE=/usr/bin/chromium \
    FLEETWRIGHT_HOME=/home/fleetwright/.fleetwright \
    FLEETWRIGHT_PROJECT_DIR=/opt/fleetwright/lib/python3.11/site-packages/fleetwright/project \
    FLEETWRIGHT_WORK_POOL=fleetwright \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_WORKER_QUERY_SECONDS=5 \
    PREFECT_RUNNER_HEARTBEAT_FREQUENCY=30 \
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30

USER fleetwright
WORKDIR /home/fleetwright

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sh", "-c", "exec prefect worker start --pool \"$FLEETWRIGHT_WORK_POOL\" --type process"]
