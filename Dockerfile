# syntax=docker/dockerfile:1
# Build for this machine:   docker build -t router-policy-sync:0.1.0 .
# Build for both platforms: docker buildx build --platform linux/amd64,linux/arm64 \
#                             -t registry.example.com/router-policy-sync:0.1.0 --push .
# python:3.11-slim is a multi-platform image (amd64 and arm64 among others, see "Supported
# architectures" at https://hub.docker.com/_/python) and every stage runs
# on the target platform (buildx uses QEMU for the other one), so pip installs that platform's
# wheels; the package itself is pure Python.
# The install steps below are replayed in a fresh virtualenv by tests/test_packaging.py.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync_job ./sync_job
RUN python -m venv /opt/venv
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin sync
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["router-policy-sync"]
CMD ["sync"]
