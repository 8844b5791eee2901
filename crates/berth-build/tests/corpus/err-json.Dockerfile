FROM busybox
CMD ["a", 1, true]
