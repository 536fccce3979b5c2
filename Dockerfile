# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian with only libpq.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# The placeholder crate's own artifacts and fingerprints go with it: COPY keeps the
# sources' file times, which are older than the placeholder build, so cargo would
# otherwise take the empty library as up to date and main.rs would not compile.
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/orderscope* target/release/liborderscope* \
       target/release/deps/orderscope-* target/release/deps/liborderscope-* \
       target/release/.fingerprint/orderscope-*
COPY migrations ./migrations
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked && strip target/release/orderscope

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
# Asks /healthz over HTTP with the binary itself (the slim image has no curl): healthy
# only on a 200 from the server, not merely an open port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/orderscope", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/orderscope"]
CMD ["serve"]
