from busybox
maintainer Someone <someone@example.com>
env A the value with spaces
Env B="quoted value" C=plain
label "com.example.key"="v a l" other=x
cmd echo shell form
entrypoint [not json]
volume /a /b
onbuild add . /src
onbuild run make
healthcheck none
shell ["/bin/bash", "-c"]
arg X Y=1 Z
expose 8080
