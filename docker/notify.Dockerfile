# tacso-notify: invitations and press notices: API and the two queue workers.
# Build from the repository root:  docker build -f docker/notify.Dockerfile -t tacso/notify .
# One image, every process of the service, chosen by the command:
#   tacso-notify serve --migrate   (default: gunicorn on $NOTIFY_PORT, 5003)
#   tacso-notify worker --queue invitations | press_notices | registrations | updates | reminders | webhooks | accounts
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv with the shared library, then the service (no compilers needed:
# every dependency ships wheels). The first steps are identical in the three Dockerfiles, so the
# shared layer is built once and reused by the other images.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY shared/ /src/shared/
RUN /opt/venv/bin/pip install --quiet /src/shared
COPY services/notify/ /src/services/notify/
RUN /opt/venv/bin/pip install --quiet /src/services/notify

# ---- runtime: the virtualenv only, a non-root user, a health check that fits the command.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tacso-notify" \
      org.opencontainers.image.vendor="TACSO"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VAR_DIR=/tmp \
    NOTIFY_PORT=5003
RUN groupadd --gid 10001 tacso \
 && useradd --uid 10001 --gid tacso --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin tacso
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py /usr/local/bin/tacso-healthcheck
USER tacso:tacso
EXPOSE 5003
# APIs: GET /healthz; workers and relays: the process is ours and the broker accepts a login.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/usr/local/bin/tacso-healthcheck"]
CMD ["tacso-notify", "serve", "--migrate"]
