#!/usr/bin/env bash
# Makes local stand-ins for the Dockerfile's two public base images, for
# machines that cannot pull from any container registry (like our CI). The
# Dockerfile itself stays as users get it; only its build arguments change:
#
#   podman build --build-arg RUST_IMAGE=localhost/rust:bookworm \
#                --build-arg RUNTIME_IMAGE=localhost/distroless-cc:nonroot .
#
# The three images, each made only when missing (or stale):
#
#   localhost/debian:bookworm-slim   Debian 12 from `debootstrap --variant=minbase`
#       (Debian's own package mirror), imported with `podman import`. Stands
#       in for docker.io/library/debian:bookworm-slim, the base of both below.
#
#   localhost/rust:bookworm          for docker.io/library/rust:1.95-slim-bookworm.
#       That image is Debian + gcc + libc6-dev + ca-certificates + a Rust
#       toolchain in /usr/local/rustup with cargo on PATH via /usr/local/cargo/bin.
#       No Rust toolchain can be downloaded here, so this one takes the HOST's:
#       the active toolchain's directory (`rustc --print sysroot`, which holds
#       rustc, cargo and the standard library) becomes the build context of a
#       small Containerfile and is COPYed to the same place as in the official
#       image, with cargo and rustc linked into /usr/local/cargo/bin. No rustup
#       inside: nothing in our Dockerfile calls it. Only the HTML docs
#       (share/doc, ~800 MB) are left out. gcc/libc6-dev come from apt during the
#       build, as in the official image. The image is rebuilt when the host's
#       rustc changes (label local.rustc).
#       The host's locally added CA certificates (/usr/local/share/ca-certificates,
#       e.g. of a TLS-inspecting egress proxy, as on our CI machines) are trusted
#       too, so `cargo` inside the build reaches crates.io exactly as it does on
#       the host. Nothing of them reaches the final image: only the builder
#       stage uses this image.
#
#   localhost/distroless-cc:nonroot  for gcr.io/distroless/cc-debian12:nonroot.
#       Built the way distroless is: FROM scratch plus the files of Debian
#       packages -- libc6 (glibc, the loader), libgcc-s1 and the CA bundle of
#       ca-certificates -- and /etc/passwd, /etc/group with root, nobody and
#       nonroot (65532), /home/nonroot, /tmp. No shell, no package manager, no
#       coreutils, same user and environment as the original, so the image
#       test checks what users will run (a Debian slim base would have passed
#       the "no shell" check only by skipping it).
#
# Usage: scripts/build-local-base-images.sh [debian] [rust] [runtime]
#        (no argument: all three). Needs root, podman and debootstrap.
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian), FORCE=1 to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_IMAGE=localhost/debian:bookworm-slim
RUST_LOCAL_IMAGE=localhost/rust:bookworm
RUNTIME_LOCAL_IMAGE=localhost/distroless-cc:nonroot
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FORCE=${FORCE:-0}

log() { echo "build-local-base-images: $*" >&2; }

have_image() { [[ $FORCE != 1 ]] && podman image exists "$1"; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/local-base-images.XXXXXX")
trap 'rm -rf "$workdir"' EXIT

make_debian() {
  if have_image "$DEBIAN_IMAGE"; then
    log "$DEBIAN_IMAGE: present"
    return
  fi
  log "$DEBIAN_IMAGE: debootstrap from $DEBIAN_MIRROR (about a minute)"
  local rootfs=$workdir/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$workdir/debootstrap.log" 2>&1 || {
    tail -20 "$workdir/debootstrap.log" >&2
    return 1
  }
  # As in the official slim image: no downloaded packages or package lists.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' --quiet - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

make_rust() {
  local sysroot rustc_version
  sysroot=$(rustc --print sysroot)
  rustc_version=$(rustc --version)
  if have_image "$RUST_LOCAL_IMAGE" &&
    [[ $(podman image inspect --format '{{index .Labels "local.rustc"}}' "$RUST_LOCAL_IMAGE") == "$rustc_version" ]]; then
    log "$RUST_LOCAL_IMAGE: present ($rustc_version)"
    return
  fi
  if [[ ! -x $sysroot/bin/cargo || ! -x $sysroot/bin/rustc ]]; then
    log "$sysroot has no bin/cargo and bin/rustc: install Rust with rustup"
    return 1
  fi
  log "$RUST_LOCAL_IMAGE: $DEBIAN_IMAGE + gcc + the host's $rustc_version ($sysroot)"
  local ctx=$workdir/rust
  mkdir -p "$ctx/toolchain" "$ctx/extra-ca"
  tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$ctx/toolchain" -xf -
  find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/extra-ca/" \; 2>/dev/null || true
  cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_IMAGE
# What the official rust:*-slim images add to Debian: a C toolchain (ring
# compiles C) and CA certificates.
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
# The host's own additional CAs, so cargo reaches crates.io as the host does.
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1
# The official image's layout: RUSTUP_HOME, CARGO_HOME, cargo on PATH.
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain/ /usr/local/rustup/toolchains/host/
RUN mkdir -p /usr/local/cargo/bin \\
 && for tool in cargo rustc rustdoc; do ln -s /usr/local/rustup/toolchains/host/bin/\$tool /usr/local/cargo/bin/\$tool; done \\
 && cargo --version && rustc --version
LABEL local.rustc="$rustc_version"
EOF
  podman build --quiet --layers=false -t "$RUST_LOCAL_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
}

make_runtime() {
  if have_image "$RUNTIME_LOCAL_IMAGE"; then
    log "$RUNTIME_LOCAL_IMAGE: present"
    return
  fi
  log "$RUNTIME_LOCAL_IMAGE: FROM scratch + libc6, libgcc-s1, CA certificates, nonroot user"
  local ctx=$workdir/runtime
  mkdir -p "$ctx"
  cat >"$ctx/Containerfile" <<'EOF'
FROM localhost/debian:bookworm-slim AS rootfs
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The packages' files (not their docs, not their /etc, no directories), kept
# in the merged-/usr layout: /lib and /lib64 are links into /usr.
RUN set -eu; \
    mkdir -p /out/usr/lib /out/usr/lib64 /out/etc/ssl/certs /out/tmp /out/home/nonroot; \
    ln -s usr/lib /out/lib; ln -s usr/lib64 /out/lib64; \
    chmod 1777 /out/tmp; chmod 0700 /out/home/nonroot; \
    dpkg -L libc6 libgcc-s1 | grep -v -e '^/usr/share/' -e '^/etc/' \
      | while read -r f; do [ -d "$f" ] || echo "$f"; done >/files; \
    for p in libc6 libgcc-s1 ca-certificates; do echo "/usr/share/doc/$p/copyright"; done >>/files; \
    tar -cf - -T /files 2>/dev/null | tar -C /out -xf - --keep-directory-symlink; \
    cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/; \
    cp -L /etc/os-release /out/etc/os-release; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >/out/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >/out/etc/group; \
    printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >/out/etc/nsswitch.conf; \
    test ! -e /out/bin/sh

FROM scratch
COPY --from=rootfs /out/ /
COPY --from=rootfs --chown=65532:65532 /out/home/nonroot /home/nonroot
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532
WORKDIR /home/nonroot
LABEL local.stands-for="gcr.io/distroless/cc-debian12:nonroot"
EOF
  podman build --quiet --layers=false -t "$RUNTIME_LOCAL_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(debian rust runtime)
for t in "${targets[@]}"; do
  case $t in
    debian) make_debian ;;
    rust) make_debian && make_rust ;;
    runtime) make_debian && make_runtime ;;
    *)
      log "unknown image '$t' (debian, rust, runtime)"
      exit 2
      ;;
  esac
done
