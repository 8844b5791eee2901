# syntax=docker/dockerfile:1
# escape=`
FROM busybox
RUN echo a `
    b `
# a comment in the middle
    c
COPY a.txt `
  /dst/
