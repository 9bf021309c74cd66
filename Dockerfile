# One image for every role: gateway, node, and the one-shot set-up job.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY mpc_gateway ./mpc_gateway
RUN pip install .

COPY nodes ./nodes
COPY examples ./examples

# gateway API, node APIs, MPyC party ports
EXPOSE 50050 50051 50052 50053 11365 11366 11367
ENTRYPOINT ["mpcgw"]
CMD ["--help"]
