# SES Ledger: one image for the API, the projector and the one-shot key set-up.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# pyproject.toml names README.md as the package readme; the four packages are the code.
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY projections ./projections
COPY api ./api
COPY ses_ledger ./ses_ledger
RUN pip install .

# An unprivileged user owning SES_LEDGER_HOME; a new named volume mounted on /data copies
# this ownership, so keys (mode 0600) and the token key stay readable by this user only.
RUN useradd --system --uid 10001 --home-dir /data --no-create-home ses \
    && mkdir /data && chown ses:ses /data && chmod 0700 /data
USER ses
ENV SES_LEDGER_HOME=/data
VOLUME ["/data"]
EXPOSE 8000

CMD ["ses-ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
