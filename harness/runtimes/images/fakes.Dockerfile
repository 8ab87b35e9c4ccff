# The fake servers (fakes/): Python dependencies installed from a wheelhouse built on the
# host with `pip wheel` (pinned to the versions the host runs), so no package index is
# needed inside the build; pip itself runs from its own wheel.
#   BASE: python:3.11-slim-bookworm where a registry is reachable; chaosgate-base:bookworm
#   (debootstrap --include=python3 + docker import) where none is.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
COPY wheels/ /tmp/wheels/
RUN PIP="$(ls /tmp/wheels/pip-*.whl)/pip" \
 && python3 "$PIP" install --no-index --find-links /tmp/wheels --break-system-packages \
      --root-user-action=ignore --disable-pip-version-check --no-warn-script-location \
      -r /tmp/wheels/requirements.txt \
 && rm -rf /tmp/wheels /root/.cache
COPY src/ /opt/chaosgate/
RUN python3 -m compileall -q /opt/chaosgate
ENV PYTHONPATH=/opt/chaosgate PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/chaosgate
USER 65534:65534
EXPOSE 8000
