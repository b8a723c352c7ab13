# tagwarden as a static binary on a distroless base.
#
# NOT BUILT OR TESTED HERE: the machine this was written on has no container
# runtime and no network beyond loopback. Build with
#   docker build -t ghcr.io/tagwarden/tagwarden:v0.1.0 .
# The builder is Alpine, so the host target is *-linux-musl and the binary is
# static (crt-static); libgit2 and libssh2 are vendored by their -sys crates,
# OpenSSL (libgit2's HTTPS) is linked from Alpine's static libraries.

FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev pkgconf openssl-dev openssl-libs-static perl make
ENV OPENSSL_STATIC=1 RUSTFLAGS="-C target-feature=+crt-static"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo build --release --locked -p tagwarden \
 && install -D -m 0755 target/release/tagwarden /out/tagwarden

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tagwarden /usr/local/bin/tagwarden
# The static OpenSSL looks under Alpine's paths; point it at distroless's CAs.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tagwarden"]
