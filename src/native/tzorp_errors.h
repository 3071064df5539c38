// What the addon's C files share (defined in tzorp_native.c): its two ways to fail, each of which
// throws and returns NULL, so a function can `return tzorp_throw_errno(env, "bind", errno);`, and the
// parsing of an address.
#ifndef TZORP_ERRORS_H
#define TZORP_ERRORS_H
#include <node_api.h>
#include <stdbool.h>
#include <sys/socket.h>

// Error("<call> failed: <strerror> (errno N)") with .syscall and .errno.
napi_value tzorp_throw_errno(napi_env env, const char *call, int err);
// TypeError(msg): bad arguments from JavaScript.
napi_value tzorp_throw_type(napi_env env, const char *msg);
// `host` (IPv4 or IPv6 text, no brackets, no scope) and `port` as a sockaddr; false when not an address.
bool tzorp_make_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);

#endif
