FROM busybox
RUN <<EOF
never ends
EOF2
