FROM busybox
RUN echo crlf \
  more
CMD ["x"]
