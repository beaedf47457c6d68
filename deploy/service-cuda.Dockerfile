# EmbedCache service, CUDA build (Gpu tier on the device).
#
# NOT BUILT ON OUR MACHINES: the TorchSharp-cuda-linux package is not served by the package
# registry we reach, so the publish below fails here; build it where nuget.org (or a mirror with
# that package) is reachable. Everything else mirrors deploy/service.Dockerfile.
#
#   dotnet publish src/CacheService -c Release -r linux-x64 --self-contained -p:TorchBackend=cuda -o artifacts/service-cuda
#   docker build -f deploy/service-cuda.Dockerfile -t embedcache/service:cuda artifacts/service-cuda
#   docker run --gpus all --network host -v embedcache-save:/var/lib/embedcache/save embedcache/service:cuda
#
# Base: Ubuntu 24.04 (glibc 2.39, libstdc++ with GLIBCXX_3.4.32), so TorchSharp's native library
# loads with no workaround. TorchSharp-cuda-linux carries libtorch with its CUDA and cuDNN libraries,
# so the image needs only the host's NVIDIA driver, which the NVIDIA container toolkit mounts in
# (--gpus all). Without a registry, import a local Ubuntu 24.04 root file system instead
# (debootstrap noble DIR http://archive.ubuntu.com/ubuntu; tar -C DIR -c . | docker import - ubuntu:24.04).
ARG BASE_IMAGE=ubuntu:24.04
FROM ${BASE_IMAGE}

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/embedcache --create-home --shell /usr/sbin/nologin embedcache \
 && mkdir -p /var/lib/embedcache/save /models /datasets \
 && chown -R embedcache:embedcache /var/lib/embedcache /models

COPY . /opt/embedcache/
RUN cp -r /opt/embedcache/datasets/. /datasets/ && chown -R embedcache:embedcache /datasets

ENV EmbedCache__ListenAddress=0.0.0.0 \
    EmbedCache__GrpcPort=50051 \
    EmbedCache__HttpPort=8080 \
    EmbedCache__SaveDir=/var/lib/embedcache/save \
    EmbedCache__DataRoot=/datasets \
    EmbedCache__Store__DefaultTier=Gpu \
    EmbedCache__Store__RequireGpu=true \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 \
    DOTNET_gcServer=0

USER embedcache
WORKDIR /var/lib/embedcache
VOLUME ["/var/lib/embedcache/save", "/models", "/datasets"]
EXPOSE 50051 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD ["/opt/embedcache/EmbedCache.CacheService", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/embedcache/EmbedCache.CacheService"]
