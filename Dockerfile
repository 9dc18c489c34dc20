# Flint Off-Session's container image: the one `flint` binary, the config/ files it reads, and
# nothing else. One image for both roles: `docker run … flint enqueuer` or `… flint worker`.
#
#   docker build -t flint .
#
# Four stages: chef (the toolchain plus cargo-chef), planner (the dependency recipe), builder
# (dependencies in a cached layer of their own, then Flint) and runtime (what ships).

# The toolchain Flint is developed and tested with, on Debian 12: the binary links against
# bookworm's glibc, which is the glibc of the runtime stage's base.
FROM rust:1.95.0-slim-bookworm AS chef
# Flint's allocator, jemalloc, is compiled from source by tikv-jemalloc-sys, whose build runs
# `make`; the slim image has gcc and libc6-dev but not make. Pinned to bookworm's version.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/* \
    && cargo install cargo-chef --locked --version 0.1.77
WORKDIR /src

# The recipe: every crate's manifest and Cargo.lock, with Flint's own code left out. It changes
# only when dependencies do, so the next stage's dependency layer survives code changes.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# Dependencies first, then Flint. `cook` must use the same profile, features and target as the
# build after it, or that build would not reuse what it compiled.
# --no-default-features leaves out the `bench-baselines` feature: apalis-redis is there only
# to be measured against by `flint bench queue`, and production never runs it.
# --locked: exactly the dependency versions in Cargo.lock, or the build fails.
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --no-default-features --bin flint --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --no-default-features --bin flint

# Distroless: glibc, libgcc, CA certificates and /etc/passwd, but no shell or package manager.
# Flint needs no more: TLS is rustls (reqwest's rustls-tls, with its own copy of the web's root
# certificates), so there is no libssl to provide. The :nonroot variant's user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="flint" \
      org.opencontainers.image.description="Flint Off-Session: charge customers' saved payment methods later, exactly once." \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /src/target/release/flint /usr/local/bin/flint
# base.toml and production.toml (see .dockerignore for the one overlay left out). Owned by
# root and read-only to Flint's user: the process cannot change its own configuration.
COPY config/ /app/config/
WORKDIR /app
# The configuration: /app/config/base.toml, then /app/config/production.toml (which listens on
# all interfaces, as a container must). FLINT_CONFIG_DIR is absolute so that it holds whatever
# the working directory. Secrets are never in these files: pass them as FLINT__SECTION__KEY
# variables (FLINT__REDIS__URL) or in a mounted file given with `--config FILE`.
ENV FLINT_ENV=production \
    FLINT_CONFIG_DIR=/app/config
# production.toml's [enqueuer] listen (the API, /healthz, /readyz, /metrics) and [worker] listen
# (a worker's /healthz, /readyz, /metrics).
EXPOSE 8080 9090
# Numeric, so that a platform enforcing non-root users (Kubernetes' runAsNonRoot) can verify it
# without reading /etc/passwd.
USER 65532:65532
# Exec form: flint is PID 1 and receives SIGTERM itself, which both roles handle by draining
# (the enqueuer finishes requests in flight; a worker lets attempts finish within
# [worker] shutdown_grace_secs). No CMD: the role is always named, never a silent default, and
# `docker run flint` alone prints the usage.
ENTRYPOINT ["/usr/local/bin/flint"]
