# The platform image: one image for Ray head, Ray workers and batch jobs.
#   docker build -t lam-platform:0.1.0 .                      (CPU: torch's CPU wheel, no CUDA libraries)
#   docker build -t lam-platform:0.1.0-gpu --build-arg BASE=rayproject/ray:2.60.0-py311-gpu \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
# The tag follows `version` in pyproject.toml; infra/ manifests reference it (tests/test_infra.py checks).
ARG BASE=python:3.11-slim
FROM ${BASE}
# PyPI's torch wheel pulls gigabytes of CUDA packages; the CPU image takes the CPU build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# rayproject/ray images run as user `ray`: install and create our user as root, then drop to `lam` below.
USER root
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md LICENSE ./
COPY lam_platform lam_platform
# The wheel carries everything the commands read (feature repo template, store profiles, job configs).
RUN pip install --index-url "${TORCH_INDEX}" "torch>=2.4" && pip install . && rm -rf /app/lam_platform
# Run as an unprivileged user that owns only the data folder (the compose volume mounts at /data).
RUN useradd --uid 10001 --create-home lam && mkdir -p /data && chown lam /data
USER lam
# Ray's default GCS port (6379) is Redis's: the compose file and manifests use 6380 for Ray.
CMD ["lam", "--help"]
