# One image for the four services and the command line; docker-compose.yml picks the
# service with its command (`python -m services.<name>`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
COPY bench ./bench
RUN pip install --no-cache-dir .
ENV XINYONG_HTTP_HOST=0.0.0.0
USER nobody
