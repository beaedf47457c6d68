# EmbedCache trainer: trains a similarity head on embeddings streamed from the service.
#
# Self-contained publish on the local Debian 13 base (see deploy/build-images.sh):
#   dotnet publish src/Trainer -c Release -r linux-x64 --self-contained -o artifacts/trainer
#   docker build --network host --build-arg BASE_IMAGE=embedcache/base:trixie \
#     -f deploy/trainer.Dockerfile -t embedcache/trainer artifacts/trainer
#   docker run --rm --network host -v trainer-out:/out embedcache/trainer \
#     train --dataset fortunes --encoder all-minilm-l6-v2 --epochs 30 --out /out/run1
# The trainer reads no raw data from the cache path (StreamDataset); /datasets is only for --no-cache.
ARG BASE_IMAGE=embedcache/base:trixie
FROM ${BASE_IMAGE}

RUN useradd --system --uid 10002 --user-group --home-dir /home/trainer --create-home --shell /usr/sbin/nologin trainer \
 && mkdir -p /out /datasets && chown trainer:trainer /out /datasets

COPY . /opt/trainer/

ENV EMBEDCACHE_SERVICE=http://127.0.0.1:50051 \
    EMBEDCACHE_DATA_ROOT=/datasets \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 \
    DOTNET_gcServer=0

USER trainer
WORKDIR /out
VOLUME ["/out", "/datasets"]
# `check` asks the service for health; a trainer is a job, so no HEALTHCHECK loop of its own.
ENTRYPOINT ["/opt/trainer/EmbedCache.Trainer"]
CMD ["train", "--dataset", "fortunes", "--encoder", "all-minilm-l6-v2", "--epochs", "30", "--out", "/out/fortunes-all-minilm-l6-v2"]
