# EmbedCache service, CPU build.
#
# The image carries a self-contained publish, so it needs no .NET SDK or runtime and no
# registry access beyond its base image. From the repository root:
#   dotnet publish src/CacheService -c Release -r linux-x64 --self-contained -o artifacts/service
#   docker build -f deploy/service.Dockerfile -t embedcache/service .
# BASE_IMAGE must have glibc >= 2.35 and libstdc++ with GLIBCXX_3.4.32 (Debian 13 / Ubuntu 24.04),
# so TorchSharp needs no workaround inside the image.
ARG BASE_IMAGE=debian:trixie-slim
FROM ${BASE_IMAGE}

RUN useradd --system --uid 10001 --home-dir /var/lib/embedcache --create-home embedcache \
 && mkdir -p /var/lib/embedcache/save /models /datasets \
 && chown -R embedcache /var/lib/embedcache

COPY artifacts/service/ /opt/embedcache/

ENV EmbedCache__ListenAddress=0.0.0.0 \
    EmbedCache__GrpcPort=50051 \
    EmbedCache__HttpPort=8080 \
    EmbedCache__SaveDir=/var/lib/embedcache/save \
    DOTNET_gcServer=0

USER embedcache
VOLUME ["/var/lib/embedcache/save", "/models", "/datasets"]
EXPOSE 50051 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/opt/embedcache/EmbedCache.CacheService", "healthcheck", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/opt/embedcache/EmbedCache.CacheService"]
