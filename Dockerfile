FROM python:3.11-slim
WORKDIR /app
# torch first and pinned, so pip does not pull an unexpected build; the CPU index keeps the image small.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY topowatch topowatch
COPY backend backend
COPY worker worker
COPY frontend frontend
RUN pip install --no-cache-dir .
ENV TOPOWATCH_STATE_DIR=/data NUMBA_CACHE_DIR=/data/numba-cache
VOLUME /data
