# syntax=docker/dockerfile:1
# The consumer with a MultiLang record processor in Python, as the blog's consumer is: amazon_kclpy's sample
# processor and its unchanged sample.properties, run by the Go consumer instead of the Java MultiLangDaemon. There
# is no JVM and no KCL jar in the image. Build context: the repository root, for example
#   docker build -f services/consumer/python.Dockerfile --platform linux/arm64 .
# The stack builds it with `cdk deploy -c consumerDockerfile=services/consumer/python.Dockerfile`; the stack's
# environment (stream, lease table, fan-out consumer) wins over the properties file's streamName and
# applicationName.
#
# Your own processor: put it and its properties file in a folder under services/ (the build context the stack
# stages), COPY them over /app in the last stage, and point ENTRYPOINT's --properties-file at your file. Its
# executableName starts it; a relative name is found next to the properties file.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=arm64
WORKDIR /src
COPY go.mod go.sum ./
COPY services/ services/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/consumer ./services/consumer

# amazon_kclpy's Python modules and its sample, from its source package. Its installer (setup.py install) downloads
# the Java KCL's jars from Maven for the Java daemon, which the Go consumer replaces: the source package is
# downloaded and unpacked, and its installer never runs.
FROM --platform=$BUILDPLATFORM python:3.13-slim AS kclpy
ARG KCLPY_VERSION=3.1.3
RUN pip download --quiet --no-deps --no-binary=:all: "amazon_kclpy==${KCLPY_VERSION}" --dest /tmp/sdist \
 && mkdir -p /tmp/src /out/lib /out/app \
 && tar -xzf /tmp/sdist/*.tar.gz -C /tmp/src --strip-components=1 \
 && cp -r /tmp/src/amazon_kclpy /out/lib/ \
 && rm -rf /out/lib/amazon_kclpy/jars \
 && cp /tmp/src/samples/sample_kclpy_app.py /tmp/src/samples/sample.properties /out/app/ \
 && chmod 0755 /out/app/sample_kclpy_app.py

FROM python:3.13-slim
# The task's root file system is read-only: no bytecode files; unbuffered output reaches the log line by line.
ENV PYTHONPATH=/opt/kclpy PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=kclpy /out/lib/ /opt/kclpy/
COPY --from=kclpy /out/app/ /app/
COPY --from=build /out/consumer /usr/local/bin/consumer
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["/usr/local/bin/consumer", "--properties-file", "/app/sample.properties"]
