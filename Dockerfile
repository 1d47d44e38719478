# One image with both services and the `smoke` checker (tools/smoke):
#   /usr/local/bin/service1, /usr/local/bin/service2, /usr/local/bin/smoke
# The command picks the binary (default: service2); the Helm chart sets
# `command: ["/usr/local/bin/service1"]` and so on.
#
#   docker build -t grpc-services:latest .        (or `make image`)
#   docker run --rm grpc-services:latest /usr/local/bin/service1 --help
#
# Runtime: distroless cc (glibc, libgcc_s, CA certificates, /etc/passwd; no
# shell, no package manager), user 65532:65532 ("nonroot"), fit for a
# read-only root filesystem. Size: 33 MB (`podman image inspect`), of which
# the three binaries are 20 MB and the base 13 MB -- measured with the
# local distroless-like stand-in of scripts/build-local-base-images.sh; the
# public distroless base differs by its own size only.
#
# Both base images are build arguments, so a machine without registry access
# can substitute equivalent local images without editing this file
# (scripts/test-image.sh does that).
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# --- chef: the Rust toolchain plus cargo-chef ------------------------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# --- planner: reduce the workspace to a recipe (manifests + Cargo.lock) ----
# The recipe only changes when dependencies change, so the `cook` layer below
# stays cached across source edits.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (cached layer), then our code -------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# `smoke` (tools/smoke) has no dependencies, so there is nothing to cook for it.
RUN cargo chef cook --release --locked --recipe-path recipe.json -p service1 -p service2
COPY . .
# No system protoc: wire/build.rs compiles the proto with protox.
RUN cargo build --release --locked -p service1 -p service2 -p smoke \
      --bin service1 --bin service2 --bin smoke

# --- runtime ----------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# Re-declared so the labels can use them (`make image` passes the revision).
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="grpc-services" \
      org.opencontainers.image.description="service1 (gRPC + REST) and service2 (REST edge) over mTLS; the command picks one" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=builder /src/target/release/service1 /src/target/release/service2 /src/target/release/smoke /usr/local/bin/
# Numeric, so runAsNonRoot can verify it without an /etc/passwd lookup.
USER 65532:65532
# service1: REST 8080, gRPC 50051, admin 9080; service2: REST 8081, admin 9081.
EXPOSE 8080 50051 9080 8081 9081
CMD ["/usr/local/bin/service2"]
