# escape=`
FROM scratch
LABEL p=c:\\dir\\ q=`$X r=a`
  b=2
ENV W c:\ `
  d
