# syntax=docker/dockerfile:1
# The project in a container: CPU by default, CUDA by build argument. Set-up is `make install`, as on a workstation.
#
# Build (from the repository root):
#   docker build -t nlp-template .                                    # CPU: python:3.11-slim, torch's CPU build
#   docker build -t nlp-template:test --target test .                 # + the dev extra (tests, lint tools, git)
#   docker build -t nlp-template:cuda \
#     --build-arg BASE=nvidia/cuda:12.8.1-runtime-ubuntu22.04 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# Pick a TORCH_INDEX_URL that has wheels of the torch version the Makefile pins (TORCH_SPEC); see
# https://pytorch.org/get-started/locally/. torch's CUDA wheels bring their own CUDA libraries: the CUDA index URL
# alone (on python:3.11-slim) also gives a GPU image; a CUDA base adds the system's CUDA libraries for other tools.
# On the host: the NVIDIA driver and the NVIDIA Container Toolkit (`--gpus all`).
#
# Run (the container's project is /home/app/project; mount logs/ to keep the runs, .env for tokens):
#   mkdir -p logs && docker run --rm -v "$PWD/logs:/home/app/project/logs" nlp-template       # make train
#   docker run --rm nlp-template make train ARGS="experiment=sentiment_tiny"                   # Hydra overrides
#   docker run --rm --env-file .env nlp-template                                                # see .env.example
#   docker run --rm -v hf-cache:/home/app/.cache/huggingface nlp-template ...                   # keep Hub downloads
#   docker run --rm --gpus all nlp-template:cuda make train ARGS="trainer=gpu"
#   docker run --rm nlp-template:test                                                           # make test
#   docker build -t nlp-template:serve --target serve .                                         # nlp-serve
#   docker run --rm -p 8000:8000 -v "$PWD/logs/train/runs/<run>:/models:ro" nlp-template:serve   # POST :8000/predict
# Files written into a mounted folder belong to the container's user, UID 1000 unless built with
# --build-arg APP_UID="$(id -u)". The default image has the core dependencies (`make install`); the loggers other
# than CSV (wandb, mlflow, tensorboard) and the ONNX exporter are extras, all in the test image's dev extra.
#
# Not built here: docker was not available where this file was written (it was checked with hadolint only).

# Any Debian/Ubuntu image works: one without Python gets the distribution's python3 (3.10 or newer is needed).
ARG BASE=python:3.11-slim
# Where torch comes from. PyPI's Linux torch is the CUDA build (~3 GB more); this index has the CPU build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The container's user (`app`). USER names it by number: a runtime that checks "not root" (Kubernetes'
# runAsNonRoot) cannot look a name up.
ARG APP_UID=1000

FROM ${BASE} AS base
ARG APP_UID
ARG DEBIAN_FRONTEND=noninteractive

# make runs the set-up. Ubuntu-based CUDA images have no Python: python3-venv brings venv and pip for it.
# Package versions are left to the base image's distribution (DL3008): pins would tie the file to one release.
# hadolint ignore=DL3008,SC2086
RUN set -eu; \
    packages="make"; \
    command -v python3 >/dev/null || packages="$packages python3 python3-venv"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*

# Not root. Ubuntu 24.04 images already have a user (`ubuntu`) with UID 1000: it gives the UID up first.
RUN set -eu; \
    existing="$(id -nu "${APP_UID}" 2>/dev/null || true)"; \
    if [ -n "$existing" ]; then userdel "$existing"; fi; \
    useradd --create-home --uid "${APP_UID}" --shell /bin/bash app; \
    install -d -o app -g app /home/app/project

# The virtual environment lives outside the project folder (the Makefile reads VENV from the environment), so a
# checkout mounted over /home/app/project (the devcontainer, `-v "$PWD:/home/app/project"`) keeps it.
ENV VENV=/home/app/venv \
    PATH=/home/app/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

USER ${APP_UID}
WORKDIR /home/app/project

# The files that declare the dependencies first, so that editing the code or the README rebuilds only the last
# layers, not torch and the rest. Until then an empty package stands in for src/ (the editable install needs one to
# point at) and an empty README.md for the one pyproject.toml names.
COPY --chown=app:app pyproject.toml Makefile ./
# ~/.cache/huggingface made here, so that a volume mounted on it starts out owned by the user, not by root.
RUN mkdir -p src/nlp_template /home/app/.cache/huggingface && touch src/nlp_template/__init__.py README.md


# `docker build --target test`: the dev extra too, and git (pre-commit and the devcontainer's editor need it).
FROM base AS test
ARG TORCH_INDEX_URL
ARG APP_UID
ARG DEBIAN_FRONTEND=noninteractive
# root for apt-get, then back to the user
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
USER ${APP_UID}
# The index is extra, not the only one: pip takes torch `X+cpu` (or `+cuXYZ`) over PyPI's `X` for the pinned
# version, and everything else from PyPI. Only for this command: pip in the container is left as it is.
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" make install-dev
COPY --chown=app:app . .
# Normally nothing to do (the install is newer than pyproject.toml); otherwise it reinstalls the project itself.
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" make install-dev
CMD ["make", "test"]


# `docker build --target serve`: nlp-serve (the `serve` extra) on port 8000, for a run directory mounted at /models
# (its checkpoints/ and the tokenizer saved beside them).
FROM base AS serve
ARG TORCH_INDEX_URL
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" make install \
    && python -m pip install --quiet "fastapi>=0.110" "uvicorn>=0.29"
COPY --chown=app:app . .
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" make install
EXPOSE 8000
# host=0.0.0.0: reachable through the published port (-p 8000:8000); put an authenticating proxy in front of it.
CMD ["nlp-serve", "ckpt_path=/models/checkpoints/last.ckpt", "host=0.0.0.0"]


# The default target (the last one): the project and its runtime dependencies.
FROM base AS runtime
ARG TORCH_INDEX_URL
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" make install
COPY --chown=app:app . .
RUN PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" make install
CMD ["make", "train"]
