"""iranpki's web layer (a client of the library): the RA's JSON API today, the portals later.
It holds no CA key: approved requests are issued by the CA side (``iranpki ra issue``)."""
