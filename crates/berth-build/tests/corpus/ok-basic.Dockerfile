FROM busybox
LABEL maintainer="someone@example.com" version=1.0
ENV PATH=/usr/local/bin:$PATH HOME=/root
WORKDIR /app
COPY . .
RUN echo hello \
    && echo world
EXPOSE 80 443/udp
VOLUME ["/data"]
USER nobody
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD wget -q -O- http://localhost/ || exit 1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo", "done"]
