# rolloutd container image: built on Debian 12 with the same packages and the same CMake steps as
# tools/dev (tests/lint/run checks that the two stay the same), run on Debian 12 slim as a
# non-root user.
#
#   docker build -t rolloutd .
#   docker run -d --name rolloutd -p 8080:8080 \
#     -v /etc/rolloutd/rolloutd.conf:/etc/rolloutd/rolloutd.conf:ro rolloutd
#   docker run --rm -v /etc/rolloutd/rolloutd.conf:/etc/rolloutd/rolloutd.conf:ro \
#     --entrypoint rolloutctl rolloutd --config /etc/rolloutd/rolloutd.conf \
#     --schema-dir /usr/share/rolloutd/schema migrate
#
# The configuration is not in the image: mount it read-only at /etc/rolloutd/rolloutd.conf (see
# config/rolloutd.conf for every setting, config/compose-rolloutd.conf for an example). It must
# set listen.address = "0.0.0.0" to be reachable from outside the container, and keep
# listen.port = 8080 for EXPOSE and the HEALTHCHECK below. docker-compose.yml runs the whole set.

# ---- build ------------------------------------------------------------------------------------
FROM debian:bookworm AS build

# BUILD_PACKAGES of tools/dev, word for word. The server and Criterion are not needed for this
# build (tests are off), but keeping the list identical means the container builds exactly as
# `tools/dev` does on a developer's machine and in CI.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config libevent-dev libpq-dev libconfig-dev libjansson-dev \
      libssl-dev libcriterion-dev postgresql-15 postgresql-client-15 curl ca-certificates openssl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
# Parallelism through the environment, so the build commands stay the same as tools/dev's.
ENV CMAKE_BUILD_PARALLEL_LEVEL=4
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DROLLOUT_TESTS=OFF \
 && cmake --build build

# ---- run --------------------------------------------------------------------------------------
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="rolloutd" \
      org.opencontainers.image.description="Records the rollout of mobile devices to the employees of the Hessian state administration"

# Only the shared libraries rolloutd and rolloutctl link against (tests/lint/run compares this
# list with the binaries' NEEDED entries), CA certificates for TLS to PostgreSQL, and curl for
# the HEALTHCHECK.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libevent-2.1-7 libevent-openssl-2.1-7 libpq5 libconfig9 libjansson4 libssl3 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system rolloutd \
 && useradd --system --gid rolloutd --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin rolloutd \
 && mkdir -p /etc/rolloutd

COPY --from=build /src/build/daemon/rolloutd /src/build/tools/rolloutctl /usr/bin/
# The migrations, for `rolloutctl --schema-dir /usr/share/rolloutd/schema migrate`.
COPY --from=build /src/schema/ /usr/share/rolloutd/schema/

USER rolloutd
EXPOSE 8080
# Liveness only: /healthz does not depend on the database, so an outage of PostgreSQL does not
# get the container restarted (rolloutd reconnects by itself; /readyz shows it). No
# --start-period: rolloutd listens within a second, three misses at 10 s give it 30 s anyway,
# and dockerfilelint 1.8 misreads the option (its pattern stops at the hyphen).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM (docker stop) makes rolloutd stop accepting, answer what is in flight and commit its
# queue; give it the time: docker stop -t 30 / stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rolloutd", "--config", "/etc/rolloutd/rolloutd.conf"]
