DEFAULT_SOCKET = "/run/mcd/mcd.sock"
