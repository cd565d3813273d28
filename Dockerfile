# quern's image: one static binary on `scratch`, which is the coordinator,
# a worker or the operator by its arguments (`coordinator …`, `worker …`,
# `operator …`), as deploy/ runs it. Non-root (65532), no shell, no libc.
#
# The binary comes from one of two stages, chosen with QUERN_BINARY:
#   build (default): compiled here, in Rust's image, for musl:
#     podman build -t localhost/quern:0.1.0 .
#   host: compiled on the host beforehand (where base images cannot be
#   pulled, or to reuse a build):
#     rustup target add x86_64-unknown-linux-musl    # Debian: apt-get install musl-tools
#     cargo build --release --locked -p quern --features kubernetes --target x86_64-unknown-linux-musl
#     strip --strip-debug target/x86_64-unknown-linux-musl/release/quern   # the release profile keeps line tables
#     podman build --build-arg QUERN_BINARY=host -t localhost/quern:0.1.0 .
# Only the stage chosen is built (buildah and BuildKit skip unused stages).
ARG QUERN_BINARY=build

FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# No debug information in the image (the release profile keeps line tables).
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked -p quern --features kubernetes --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/quern /quern

FROM scratch AS host
COPY target/x86_64-unknown-linux-musl/release/quern /quern

FROM ${QUERN_BINARY} AS binary

FROM scratch
COPY --from=binary /quern /quern
USER 65532:65532
ENTRYPOINT ["/quern"]
