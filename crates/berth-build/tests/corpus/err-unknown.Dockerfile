FROM busybox

FORM busybox
