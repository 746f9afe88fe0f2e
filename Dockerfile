# FrameOps images. Targets:
#   web     (default): Django under gunicorn; also the Celery worker and beat (other CMD).
#                      No torch: the web process never imports it.
#   runner:            the reference inference runner (python -m inference), with CPU torch;
#                      build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
#                      and TORCH_SPEC=torch==2.13.0+cu128 for GPUs.
#   docker build -t frameops/web .            docker build --target runner -t frameops/runner .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY finops finops
COPY collectors collectors
COPY inference inference
RUN pip install .

FROM python:3.11-slim AS web
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=finops.settings FRAMEOPS_VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles
RUN useradd --system --uid 10001 --create-home --home-dir /home/frameops frameops
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY finops finops
COPY collectors collectors
COPY inference inference
COPY templates templates
COPY static static
COPY deploy/prometheus deploy/prometheus
COPY deploy/gunicorn.conf.py deploy/gunicorn.conf.py
# Static files at build time (whitenoise serves them); the key is only for this command.
RUN DEBUG=0 SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --no-input \
    && mkdir -p /app/var && chown -R frameops /app/var
USER frameops
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/')"
CMD ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py", "--chdir", "/app", "finops.wsgi:application"]

FROM web AS runner
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch==2.13.0
USER root
COPY --from=build /src /src
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC" && pip install "/src[runner]"
USER frameops
CMD ["python", "-m", "inference", "--help"]
