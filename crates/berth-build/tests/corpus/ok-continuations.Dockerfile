FROM busybox
RUN apk add \
    # comment dropped
    curl \

    git \
    && echo done
RUN echo \\
CMD ["a", \
     "b"]
