// The addon's two ways to fail, shared by its C files (defined in tzorp_native.c). Each throws and
// returns NULL, so a function can `return tzorp_throw_errno(env, "bind", errno);`.
#ifndef TZORP_ERRORS_H
#define TZORP_ERRORS_H
#include <node_api.h>

// Error("<call> failed: <strerror> (errno N)") with .syscall and .errno.
napi_value tzorp_throw_errno(napi_env env, const char *call, int err);
// TypeError(msg): bad arguments from JavaScript.
napi_value tzorp_throw_type(napi_env env, const char *msg);

#endif
