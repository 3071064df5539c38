// tzorp_privs: dropping root for `tzorp run --user NAME` (docs/operations.md, "Least privilege").
//
// dropPrivileges(uid, gid, groups, caps) leaves the calling process running as uid/gid with the
// supplementary groups `groups`, and with exactly the capabilities `caps` (numbers, e.g. 12 for
// CAP_NET_ADMIN) permitted, effective, inheritable and ambient:
//   1. while still root: every other capability leaves the bounding set (PR_CAPBSET_DROP; skipped
//      when CAP_SETPCAP is already gone, e.g. under a unit's CapabilityBoundingSet), and
//      PR_SET_KEEPCAPS keeps the permitted set across the uid change;
//   2. setgroups, setresgid, setresuid: glibc applies these to every thread of the process;
//   3. capset: permitted = effective = inheritable = caps, on this (the JavaScript) thread;
//   4. the ambient set raised to caps, so that programs this process starts (nft, ip, sysctl, the
//      daemon's workers, all non-setuid) keep them across execve.
// Other threads (libuv's pool) end up with the uid and no capabilities at all: the kernel clears a
// thread's capabilities on the uid change unless that thread asked to keep them. Anything that needs
// a capability must therefore run on the JavaScript thread (a synchronous call) or in a child.
// Called again in a process that already runs as uid/gid (a worker started by a dropped daemon), it
// skips the uid change and only narrows the capabilities. Throws Error with .syscall and .errno.
#define _GNU_SOURCE  // getresuid, setresuid and friends
#include <node_api.h>

#include "tzorp_errors.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_GROUPS 64
#define MAX_CAP 63

static bool get_u32(napi_env env, napi_value v, uint32_t *out) {
  int64_t n;
  if (napi_get_value_int64(env, v, &n) != napi_ok || n < 0 || n > 0xfffffffe) return false;
  *out = (uint32_t)n;
  return true;
}

// A JavaScript array of small non-negative integers into out[]; false on anything else.
static bool get_u32_array(napi_env env, napi_value v, uint32_t *out, uint32_t max, uint32_t *n) {
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array) return false;
  if (napi_get_array_length(env, v, n) != napi_ok || *n > max) return false;
  for (uint32_t i = 0; i < *n; i++) {
    napi_value e;
    if (napi_get_element(env, v, i, &e) != napi_ok || !get_u32(env, e, &out[i])) return false;
  }
  return true;
}

static int capget_self(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  return (int)syscall(SYS_capget, &h, data);
}

static napi_value DropPrivileges(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    return tzorp_throw_type(env, "dropPrivileges(uid, gid, groups, caps) takes four arguments");
  }
  uint32_t uid, gid, ngroups, ncaps, groups32[MAX_GROUPS], caps[MAX_CAP + 1];
  if (!get_u32(env, argv[0], &uid) || !get_u32(env, argv[1], &gid)) {
    return tzorp_throw_type(env, "dropPrivileges: uid and gid must be non-negative integers");
  }
  if (!get_u32_array(env, argv[2], groups32, MAX_GROUPS, &ngroups)) {
    return tzorp_throw_type(env, "dropPrivileges: groups must be an array of at most 64 gids");
  }
  if (!get_u32_array(env, argv[3], caps, MAX_CAP + 1, &ncaps)) {
    return tzorp_throw_type(env, "dropPrivileges: caps must be an array of capability numbers");
  }
  uint64_t keep = 0;
  for (uint32_t i = 0; i < ncaps; i++) {
    if (caps[i] > MAX_CAP) return tzorp_throw_type(env, "dropPrivileges: a capability number is out of range");
    keep |= (uint64_t)1 << caps[i];
  }

  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (getresuid(&ruid, &euid, &suid) < 0) return tzorp_throw_errno(env, "getresuid", errno);
  if (getresgid(&rgid, &egid, &sgid) < 0) return tzorp_throw_errno(env, "getresgid", errno);
  bool already = ruid == uid && euid == uid && suid == uid && rgid == gid && egid == gid && sgid == gid;

  if (!already) {
    for (int c = 0; c <= MAX_CAP; c++) {
      if (keep & ((uint64_t)1 << c)) continue;
      if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1) continue;  // not in the set, or unknown here
      if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
        if (errno == EPERM) break;  // no CAP_SETPCAP: the bounding set was narrowed for us already
        return tzorp_throw_errno(env, "prctl(PR_CAPBSET_DROP)", errno);
      }
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return tzorp_throw_errno(env, "prctl(PR_SET_KEEPCAPS)", errno);
    gid_t groups[MAX_GROUPS];
    for (uint32_t i = 0; i < ngroups; i++) groups[i] = (gid_t)groups32[i];
    if (setgroups(ngroups, groups) < 0) return tzorp_throw_errno(env, "setgroups", errno);
    if (setresgid(gid, gid, gid) < 0) return tzorp_throw_errno(env, "setresgid", errno);
    if (setresuid(uid, uid, uid) < 0) return tzorp_throw_errno(env, "setresuid", errno);
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  }

  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  for (int w = 0; w < 2; w++) {
    uint32_t bits = (uint32_t)(keep >> (32 * w));
    d[w].effective = d[w].permitted = d[w].inheritable = bits;
  }
  if (syscall(SYS_capset, &h, d) < 0) return tzorp_throw_errno(env, "capset", errno);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
    return tzorp_throw_errno(env, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
  }
  for (int c = 0; c <= MAX_CAP; c++) {
    if (!(keep & ((uint64_t)1 << c))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) {
      return tzorp_throw_errno(env, "prctl(PR_CAP_AMBIENT_RAISE)", errno);
    }
  }

  // What the process has now, read back: the caller checks it rather than trusting the calls above.
  struct __user_cap_data_struct now[2];
  if (capget_self(now) < 0) return tzorp_throw_errno(env, "capget", errno);
  if (getresuid(&ruid, &euid, &suid) < 0) return tzorp_throw_errno(env, "getresuid", errno);
  if (getresgid(&rgid, &egid, &sgid) < 0) return tzorp_throw_errno(env, "getresgid", errno);
  char eff[17], prm[17];
  snprintf(eff, sizeof eff, "%016llx",
           (unsigned long long)(((uint64_t)now[1].effective << 32) | now[0].effective));
  snprintf(prm, sizeof prm, "%016llx",
           (unsigned long long)(((uint64_t)now[1].permitted << 32) | now[0].permitted));
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_uint32(env, euid, &v);
  napi_set_named_property(env, out, "uid", v);
  napi_create_uint32(env, egid, &v);
  napi_set_named_property(env, out, "gid", v);
  napi_create_string_utf8(env, eff, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "effective", v);
  napi_create_string_utf8(env, prm, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "permitted", v);
  return out;
}

// Adds dropPrivileges to the addon's exports (called from tzorp_native.c's Init).
napi_value tzorp_privs_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"dropPrivileges", NULL, DropPrivileges, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
