ARG BASE=scratch
FROM ${BASE:-busybox}
ARG A=aval
ARG B
ARG HTTP_PROXY
ENV E1=$A E2="${A}-x" E3='$A' E4=\$A E5=${B:-def} E6=${A:+alt}
ENV E9 two  spaces $A
ENV A=fromenv E10=$A
ENV E11=$A E12="a \"q\" b" E13=a\ b E14="$HTTP_PROXY"
LABEL l1="$A" "l 2"='x y' l3=a\\b l4=${E2}
ENV P="80 443"
EXPOSE $P 22/udp
WORKDIR /w/$A
WORKDIR sub
USER ${A}:${B}
STOPSIGNAL ${SIG:-SIGTERM}
VOLUME ["/v/$A", "/v2"]
