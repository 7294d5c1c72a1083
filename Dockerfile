# One image for the four services and the command line; docker-compose.yml picks the
# service with its command (`python -m services.<name>`). openssl makes the broker's TLS
# certificate (deploy/tls.sh); uid 1000 is the Kafka image's user too, so both read the
# secrets they share (mode 0600) from one volume. The publisher renders credit reports with
# WeasyPrint: pango and a CJK font (fonts-wqy-zenhei, as deploy/fonts.sh installs locally).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssl \
    libpango-1.0-0 libpangoft2-1.0-0 fontconfig fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/* && useradd --uid 1000 --create-home xinyong
WORKDIR /app
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
COPY bench ./bench
RUN pip install --no-cache-dir .
ENV XINYONG_HTTP_HOST=0.0.0.0 XINYONG_METRICS_HOST=0.0.0.0 XINYONG_HOME=/xinyong
USER 1000
