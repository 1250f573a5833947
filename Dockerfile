# crm-pulse in a container: `docker compose up -d` (compose.yaml) runs it with PostgreSQL state.
# Two stages: the build stage installs into a venv; the final image holds only that venv on
# python:3.12-slim (no compiler, no pip cache, no sources), runs as an unprivileged user and
# checks its state database every minute.
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md config.example.toml ./
COPY bot ./bot
COPY crm ./crm
COPY detectors ./detectors
COPY messages ./messages
COPY predict ./predict
RUN python -m venv /opt/crm-pulse \
 && /opt/crm-pulse/bin/pip install . \
 && find /opt/crm-pulse -name __pycache__ -prune -exec rm -rf {} +

FROM python:3.12-slim
LABEL org.opencontainers.image.title="crm-pulse" \
      org.opencontainers.image.description="Proactive plain-language CRM insights in Telegram and Slack"
ENV PATH=/opt/crm-pulse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/crm-pulse --create-home crm-pulse
COPY --from=build /opt/crm-pulse /opt/crm-pulse
USER 10001:10001
WORKDIR /var/lib/crm-pulse
# The config is mounted here (read-only); the CRM exports at /data; secrets come from the environment.
VOLUME ["/var/lib/crm-pulse"]
# Healthy = with [metrics] enabled, /healthz says the scheduler runs and the last scan did not
# fail; without it, the state database opens and answers. The bot itself ending ends the
# container, and the restart policy brings it back.
HEALTHCHECK --interval=60s --timeout=20s --start-period=90s --retries=3 \
  CMD ["crm-pulse", "health", "--config", "/etc/crm-pulse/config.toml"]
ENTRYPOINT ["crm-pulse"]
CMD ["run", "--config", "/etc/crm-pulse/config.toml"]
