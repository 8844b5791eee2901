ARG BASE=busybox
ARG TAG=latest
FROM --platform=linux/amd64 ${BASE}:${TAG} AS build
ARG TAG
RUN echo "building $TAG" > /out
FROM build AS test
RUN test -f /out
FROM scratch
COPY --from=build /out /out
COPY --from=0 /out /out2
