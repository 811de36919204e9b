# syntax=docker/dockerfile:1
# scene-operator image: bash scripts/build-image.sh (podman; builds where no registry can be
# reached too), or
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/scene-operator/scene-operator:0.1.0 .
#
# Two stages on the same base: the builder installs the runtime dependencies into a
# virtualenv at /opt/venv and the package's wheel into /opt/app (on PYTHONPATH); the
# runtime stage copies only those two folders.
# It runs as uid 65532 with a read-only root filesystem: HOME and TMPDIR are /tmp (an
# emptyDir in the Deployment), and nothing writes bytecode at run time.
# The base is pinned by digest (python:3.11-slim as published for 3.11.16): a rebuild
# gets the very same base until the digest is changed on purpose. BASE_IMAGE can name
# another base with Python 3.11+ as `python3` and its venv module (build-image.sh uses a
# Debian bookworm base made with debootstrap when no registry answers); the venv's
# `python` is what runs, so the base's interpreter path does not matter.

ARG BASE_IMAGE=docker.io/library/python:3.11-slim@sha256:9534e5a8e315485d4061ed659af0fd78a284c015f9b73661b41d6bab25604534

FROM ${BASE_IMAGE} AS builder

# /opt/build: the build's own tools (pip, setuptools), never in the image. /opt/venv: the
# runtime dependencies only. /opt/app: the package. Two folders, two layers in the image:
# a change to controller/ rebuilds and ships only /opt/app (about 2 MB), not the
# dependencies' 400 MB.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/build/bin:$PATH

RUN python3 -m venv /opt/build \
 && python3 -m venv --without-pip /opt/venv

WORKDIR /src

# Dependencies first (a layer that changes only with pyproject.toml): the runtime
# dependencies of [project], never the test extras.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip --python /opt/venv/bin/python install --requirement requirements.txt

# Then the package itself, as a wheel, without touching the dependencies. The README is
# only the package's long description: a stub stands in (a README edit rebuilds nothing).
COPY controller ./controller
# The source commit for scene_operator_build_info (scripts/build-image.sh passes it).
ARG COMMIT=unknown
RUN printf 'COMMIT = "%s"\n' "$COMMIT" > controller/_build.py
RUN echo "scene-operator: https://github.com/scene-operator/scene-operator" > README.md \
 && pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && pip --python /opt/venv/bin/python install --no-deps --target /opt/app /tmp/wheels/*.whl \
 && PYTHONPATH=/opt/app /opt/venv/bin/python -c "import controller.__main__, kopf, boto3, av, google.genai, replicate"


FROM ${BASE_IMAGE} AS runtime

# The version: pyproject.toml's, passed by build-image.sh.
ARG VERSION=dev
LABEL org.opencontainers.image.title="scene-operator" \
      org.opencontainers.image.description="Kubernetes operator: Projects to planned Scenes and AI-generated video clips in S3" \
      org.opencontainers.image.source="https://github.com/scene-operator/scene-operator" \
      org.opencontainers.image.version="${VERSION}"

# A named user for uid 65532 (some libraries look the uid up); no login shell, home /tmp.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin nonroot

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/app /opt/app

# LOGNAME: kopf names itself user@host with getpass.getuser(), which reads it before
# falling back to the passwd lookup that fails for an arbitrary uid (e.g. OpenShift's).
ENV PATH=/opt/venv/bin:/opt/app/bin:$PATH \
    PYTHONPATH=/opt/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    LOGNAME=nonroot
# glibc gives each thread that allocates its own heap arena (up to 8 per core); the
# operator's I/O threads (boto3, the provider SDKs, the probe) then keep memory spread
# over many arenas: two arenas lowered peak RSS by 14 MB at 1,000 Scenes (benchmarks/
# README.md). The benchmark starts the operator with the same setting (image_env).
ENV MALLOC_ARENA_MAX=2

USER 65532:65532
WORKDIR /tmp

# 8080: liveness (/healthz, kopf); 9090: Prometheus metrics.
EXPOSE 8080 9090

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCENE_OPERATOR_LIVENESS_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["python", "-m", "controller", "run"]
