FROM busybox
RUN <<EOF
echo one
echo two
EOF
RUN <<-'EOT' sh
	echo "$HOME not expanded"
	EOT
COPY <<A <<"B" /files/
first
A
second $X
B
RUN cat <<X > /a && cat <<Y > /b
x
X
y
Y
ONBUILD RUN <<EOF
echo trigger
EOF
CMD ["done"]
