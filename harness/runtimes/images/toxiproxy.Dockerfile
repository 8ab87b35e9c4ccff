# Toxiproxy: the host's toxiproxy-server (built by .ci/setup with a pinned go install into
# .tools/bin), between the gateway and every replica.
#   BASE: debian:bookworm-slim where a registry is reachable; chaosgate-base:bookworm
#   (debootstrap + docker import) where none is.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY toxiproxy-server /usr/local/bin/toxiproxy-server
USER 65534:65534
EXPOSE 8474
ENTRYPOINT ["/usr/local/bin/toxiproxy-server"]
CMD ["-host", "0.0.0.0", "-port", "8474"]
