# The platform image: one image for Ray head, Ray workers and batch jobs.
#   docker build -t lam-platform:0.1.0 .                      (CPU; torch from PyPI)
#   docker build -t lam-platform:0.1.0-gpu --build-arg BASE=rayproject/ray:2.60.0-py311-gpu .
# The tag follows `version` in pyproject.toml; infra/ manifests reference it (tests/test_infra.py checks).
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY lam_platform lam_platform
COPY lightning_modules lightning_modules
COPY ray_jobs ray_jobs
COPY feature_repo feature_repo
COPY infra infra
RUN pip install "torch>=2.4" && pip install .
# Run as an unprivileged user that owns only the data folder (the compose volume mounts at /data).
RUN useradd --uid 10001 --create-home lam && mkdir -p /data && chown lam /data
USER lam
# Ray's default GCS port (6379) is Redis's: the compose file and manifests use 6380 for Ray.
CMD ["lam", "--help"]
