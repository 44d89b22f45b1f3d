# syntax=docker/dockerfile:1
# The routerforge serving image: the base install (ONNX Runtime, FastAPI, gRPC; no torch, no transformers), run
# as a non-root user. docs/deploy.md has the commands. In short:
#   docker build -t routerforge:0.1.0 .                                  # bundle mounted at run time
#   docker run --rm -p 8080:8080 -e ROUTERFORGE_TOKEN=... \
#     -v "$PWD/runs/local-data/bundle:/models/bundle:ro" -v "$PWD/router.yaml:/etc/routerforge/router.yaml:ro" \
#     routerforge:0.1.0
#   docker build --target baked --build-context bundle=runs/local-data/bundle -t routerforge:0.1.0-baked .
# The bundle must hold an ONNX export (model.int8.onnx or model.onnx: `routerforge export BUNDLE`): the image
# has no torch backend.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment with routerforge and its serving dependencies ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m venv /opt/routerforge \
    && /opt/routerforge/bin/pip install . \
    && /opt/routerforge/bin/python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'transformers')))"

# -- runtime: the virtual environment alone, a non-root user -----------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="routerforge" \
      org.opencontainers.image.description="LLM semantic router: OpenAI-compatible proxy and Envoy ExtProc server" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 routerforge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin routerforge
COPY --from=build /opt/routerforge /opt/routerforge
ENV PATH=/opt/routerforge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HOME=/tmp/huggingface
# HF_HOME: where `serve hf:ORG/NAME` keeps the downloaded bundle (writable; mount a volume there to keep it)
# the router YAML goes to /etc/routerforge/router.yaml, the bundle to /models/bundle (mounted or baked below)
WORKDIR /srv/routerforge
USER 10001:10001
EXPOSE 8080 50051
# `routerforge serve` answers /healthz on the config's server.port (8080 here); the ExtProc command has no HTTP
# port: override the check (docker run --no-healthcheck) when running `extproc`. Kubernetes uses its own probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["routerforge"]
# off loopback, serve refuses to start without server.auth_token_env set in the router YAML (or --insecure)
CMD ["serve", "/models/bundle", "--config", "/etc/routerforge/router.yaml", "--host", "0.0.0.0"]

# -- baked: the bundle inside the image (docker build --target baked --build-context bundle=DIR) --------------
FROM runtime AS baked
COPY --from=bundle --chown=10001:10001 . /models/bundle/

# -- serve (the default target): the bundle is mounted at /models/bundle -------------------------------------
FROM runtime AS serve
