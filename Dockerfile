# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian with only libpq.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked && rm -rf src target/release/deps/orderscope* target/release/orderscope*
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked && strip target/release/orderscope

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system orderscope && useradd --system --gid orderscope --no-create-home orderscope
COPY --from=build /app/target/release/orderscope /usr/local/bin/orderscope
USER orderscope:orderscope
ENV APP_ENV=production \
    BIND=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
# JWT_SECRET, DATABASE_URL and REDIS_URL must be provided; the server refuses to start
# in production with the development secret. Run `orderscope migrate` once per release.
# A TCP check (the slim image has bash but no curl); /healthz is for orchestrators.
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/orderscope"]
CMD ["serve"]
