// The few socket chores moongate-control and moongatectl share: listening
// Unix and TCP sockets, and a blocking request/response client.
#pragma once

#include <string>

namespace moongate::control {

// True when something accepts connections on the AF_UNIX socket at `path`.
bool unix_socket_alive(const std::string& path);

// A listening Unix stream socket at `path` (a stale socket file is
// replaced; the directory is created), mode 0600. -1 and `error` on failure.
int listen_unix(const std::string& path, std::string& error);
// A listening TCP socket on "host:port" (IPv4 or [IPv6]). -1 and `error`.
int listen_tcp(const std::string& host_port, std::string& error);

// Connects to a Unix socket, sends `request`, reads until the peer closes or
// `until` is seen at the end of what was read. "" and `error` on failure.
std::string unix_request(const std::string& path, const std::string& request, const std::string& until,
                         std::string& error);

}  // namespace moongate::control
