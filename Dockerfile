# The presence server as one container: the Procfile's gunicorn command on 0.0.0.0:$PORT.
#   docker build -t presence-server . && docker run -p 5000:5000 presence-server
# The embedded SQLite store lives in /data (mount a volume there to keep it across containers).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=5000

# A plain (non-editable) install from the sources; every dependency ships a binary wheel.
COPY . /tmp/src
RUN pip install /tmp/src && rm -rf /tmp/src \
    && useradd --create-home --uid 10001 presence \
    && mkdir /data && chown presence /data

USER presence
WORKDIR /data
EXPOSE 5000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"

# Same line as the Procfile's web: (tests/e2e/test_install.py checks that they stay equal);
# exec, so that gunicorn gets SIGTERM from `docker stop` and shuts down gracefully.
CMD ["/bin/sh", "-c", "exec gunicorn --worker-class geventwebsocket.gunicorn.workers.GeventWebSocketWorker --workers 1 --bind 0.0.0.0:$PORT --config python:presence_server.gunicorn_hooks presence_server.wsgi:app"]
