"""Pure computer-vision library of walkout: no sockets, threads or globals."""
