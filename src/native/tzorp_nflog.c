// tzorp_nflog: an NFLOG netlink socket bound to one group (issue 10, item 5: the kernel's log of
// forwarded and denied connections). nflogOpen(group, copyBytes) -> fd: a NETLINK_NETFILTER socket
// bound to the group, copying the first copyBytes of each logged packet (the IP and transport headers)
// with its prefix and mark. The daemon reads the fd (one datagram per read) and parses the messages in
// TypeScript (src/kernel/nflog.ts, sans-IO). Plain C, N-API; failures throw like tzorp_native.c.
#include <node_api.h>

#include "tzorp_errors.h"

#include <errno.h>
#include <stdio.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

// One NFULNL_MSG_CONFIG request with one attribute, acknowledged; 0 or a positive errno.
static int nflog_config(int fd, uint16_t group, uint8_t family, uint16_t type, const void *data, uint16_t len) {
  char buf[128];
  memset(buf, 0, sizeof buf);
  struct nlmsghdr *nh = (struct nlmsghdr *)buf;
  nh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nh->nlmsg_seq = 1;
  struct nfgenmsg *g = (struct nfgenmsg *)NLMSG_DATA(nh);
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(group);
  struct nlattr *a = (struct nlattr *)((char *)g + NLMSG_ALIGN(sizeof *g));
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  memcpy((char *)a + NLA_HDRLEN, data, len);
  nh->nlmsg_len = NLMSG_LENGTH(NLMSG_ALIGN(sizeof *g) + NLA_ALIGN(a->nla_len));
  if (send(fd, buf, nh->nlmsg_len, 0) < 0) return errno;
  char ack[256];
  ssize_t n = recv(fd, ack, sizeof ack, 0);
  if (n < 0) return errno;
  struct nlmsghdr *r = (struct nlmsghdr *)ack;
  if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && r->nlmsg_type == NLMSG_ERROR) {
    struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(r);
    return e->error < 0 ? -e->error : 0;
  }
  return 0;
}

// nflogOpen(group, copyBytes) -> fd
static napi_value NflogOpen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t group = 0, copy = 0;
  if (argc < 2 || napi_get_value_uint32(env, argv[0], &group) != napi_ok || group > 65535 ||
      napi_get_value_uint32(env, argv[1], &copy) != napi_ok || copy == 0 || copy > 65535) {
    return tzorp_throw_type(env, "nflogOpen(group 0..65535, copyBytes 1..65535)");
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return tzorp_throw_errno(env, "socket", errno);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return tzorp_throw_errno(env, "bind", e);
  }
  // A read returns at least once a second (EAGAIN when nothing came), so the daemon's reader, which
  // blocks on the thread pool, sees that it was stopped and lets the process end. A larger buffer
  // (forced as root, past rmem_max) rides out bursts of logged connections.
  struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int rcvbuf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
  int e = nflog_config(fd, (uint16_t)group, AF_UNSPEC, NFULA_CFG_CMD, &cmd, sizeof cmd);
  if (e == 0) {
    struct nfulnl_msg_config_mode mode;
    memset(&mode, 0, sizeof mode);
    mode.copy_range = htonl(copy);
    mode.copy_mode = NFULNL_COPY_PACKET;
    e = nflog_config(fd, (uint16_t)group, AF_UNSPEC, NFULA_CFG_MODE, &mode, sizeof mode);
  }
  if (e == 0) {
    // deliver each logged packet at once (no batching delay)
    uint32_t one = htonl(1);
    e = nflog_config(fd, (uint16_t)group, AF_UNSPEC, NFULA_CFG_QTHRESH, &one, sizeof one);
  }
  if (e != 0) {
    close(fd);
    return tzorp_throw_errno(env, "nflog bind", e);
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

void tzorp_nflog_register(napi_env env, napi_value exports) {
  napi_property_descriptor p = {"nflogOpen", NULL, NflogOpen, NULL, NULL, NULL, napi_enumerable, NULL};
  napi_define_properties(env, exports, 1, &p);
}
