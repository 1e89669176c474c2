# selfsup in a container: `docker build -t selfsup .` then `docker run --rm selfsup`
# (add `--gpus all` and `trainer=gpu` on a GPU host). pip resolves torch + torchvision together.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends make git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/selfsup
COPY pyproject.toml README.md ./
COPY selfsup ./selfsup
RUN pip install --no-cache-dir -e ".[dev]"
COPY . .

ENTRYPOINT ["python", "train.py"]
