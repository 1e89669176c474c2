# selfsup in a container, on the python:3.11-slim base image (Debian):
#   docker build -t selfsup .
#   docker run --rm selfsup                                  # `make train`: SimCLR on digits, CPU
#   docker run --rm selfsup make train ARGS="loss=dcl"       # any train.py overrides
#   docker run --rm --gpus all selfsup python train.py trainer=gpu
# The project's .venv is built in the image (as `make install` builds it), so `make train`,
# `make test` and `python` (.venv/bin is first on PATH) work offline. pip resolves torch and
# torchvision together (the CUDA build from PyPI).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends make git \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
WORKDIR /workspace/selfsup
# The dependencies first, in their own layer: a change to the code does not reinstall torch.
COPY pyproject.toml README.md Makefile ./
COPY selfsup ./selfsup
# selfsup/configs is a link to configs/, which the package data of the install names.
COPY configs ./configs
RUN make install
COPY . .
# COPY may give pyproject.toml a newer time than the stamp: the install above stands.
RUN touch .venv/.installed-stamp
ENV PATH=/workspace/selfsup/.venv/bin:$PATH

CMD ["make", "train"]
