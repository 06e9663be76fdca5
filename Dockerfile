# syntax=docker/dockerfile:1
# Build for this machine:   docker build -t router-policy-sync:0.1.0 .
# Build for both platforms: docker buildx build --platform linux/amd64,linux/arm64 \
#                             -t registry.example.com/router-policy-sync:0.1.0 --push .
# python:3.11-slim is a multi-platform image (amd64 and arm64 among others, see "Supported
# architectures" at https://hub.docker.com/_/python) and every stage runs
# on the target platform (buildx uses QEMU for the other one), so pip installs that platform's
# wheels; the package itself is pure Python.
# Reproducible: the base image is pinned by the digest of its multi-platform index (the tag
# beside it is for humans), and every dependency is installed from requirements.lock, pinned
# with the hashes of every platform's files (README "Refreshing the lock file and the base
# image" says how to update both).
# The build-stage install steps are replayed in a fresh virtualenv by tests/test_packaging.py.

# python:3.11-slim (Python 3.11.15, Debian trixie), index digest as of 2026-08-05
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY sync_job ./sync_job
RUN python -m venv /opt/venv
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .
# The runtime needs no installer: nothing that could fetch and run code is left in the venv.
RUN /opt/venv/bin/pip uninstall --yes pip setuptools wheel

# python:3.11-slim, the same digest as above
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
COPY --from=build /opt/venv /opt/venv
# The base image's own pip, setuptools and wheel go too (the base links pip to pip3).
RUN python -m pip uninstall --yes pip setuptools wheel && rm -f /usr/local/bin/pip \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin sync
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["router-policy-sync"]
CMD ["sync"]
