# syntax=docker/dockerfile:1
FROM scratch
  # indented comment
LABEL a=1 \
# a comment inside a continued line
      b=2 \

      c="3 \" 4"
env lower=case
CMD [a, b]
ENTRYPOINT ["x"]
LABEL j1=["not","json"] j2='single $x'
ENV   SPACED   a   b   
LABEL e=x\\ f=\$HOME g="\$HOME" h='\'
STOPSIGNAL 9
USER 1000:1000
VOLUME ["/j"] 
VOLUME /w1 /w2
EXPOSE 8080/tcp 53/udp
ONBUILD   LABEL   trig=1
HEALTHCHECK CMD ["true"]
