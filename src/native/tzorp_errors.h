// What the addon's C files share (defined in tzorp_native.c): its two ways to fail, each of which
// throws and returns NULL, so a function can `return tzorp_throw_errno(env, "bind", errno);`, and the
// parsing and printing of an address.
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
// The text of a socket address into `host` (TZORP_HOST_TEXT bytes) and its port: JavaScript's canonical
// text (inet_ntop), IPv4 never in the ::ffff: form. An address of another family gives "" and 0.
#define TZORP_HOST_TEXT 64
void tzorp_addr_text(const struct sockaddr_storage *ss, char *host, int *port);

#endif
