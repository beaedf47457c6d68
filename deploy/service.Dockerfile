# EmbedCache service, CPU build.
#
# The image carries a self-contained publish (no .NET SDK or runtime inside) and builds with no
# registry: its base is a local Debian 13 root file system imported as an image. deploy/build-images.sh
# does all of it; by hand, from the repository root:
#   dotnet publish src/CacheService -c Release -r linux-x64 --self-contained -o artifacts/service
#   docker build --network host --build-arg BASE_IMAGE=embedcache/base:trixie \
#     -f deploy/service.Dockerfile -t embedcache/service artifacts/service
# The build context is the publish folder, so nothing else of the repository is sent to the engine.
# BASE_IMAGE needs glibc >= 2.35 and libstdc++ with GLIBCXX_3.4.32 (Debian 13 / Ubuntu 24.04):
# TorchSharp's native library loads there with no workaround.
ARG BASE_IMAGE=embedcache/base:trixie
FROM ${BASE_IMAGE}

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/embedcache --create-home --shell /usr/sbin/nologin embedcache \
 && mkdir -p /var/lib/embedcache/save /models /datasets \
 && chown -R embedcache:embedcache /var/lib/embedcache /models

COPY . /opt/embedcache/
# The shipped datasets (digits) under the default data root; a volume at /datasets replaces them.
RUN cp -r /opt/embedcache/datasets/. /datasets/ && chown -R embedcache:embedcache /datasets

# Configuration is EmbedCache__<Key> (double underscore for nesting, e.g. EmbedCache__Store__DefaultTier).
ENV EmbedCache__ListenAddress=0.0.0.0 \
    EmbedCache__GrpcPort=50051 \
    EmbedCache__HttpPort=8080 \
    EmbedCache__SaveDir=/var/lib/embedcache/save \
    EmbedCache__DataRoot=/datasets \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 \
    DOTNET_gcServer=0

USER embedcache
WORKDIR /var/lib/embedcache
VOLUME ["/var/lib/embedcache/save", "/models", "/datasets"]
EXPOSE 50051 8080
# The service's own probe (no curl in the image): GET http://127.0.0.1:$EmbedCache__HttpPort/healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/embedcache/EmbedCache.CacheService", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/embedcache/EmbedCache.CacheService"]
