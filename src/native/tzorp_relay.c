// tzorp_relay: the native byte relay (issue 14). Once a proxy core only copies bytes between two TCP
// streams (a plug session after its start), the driver (src/net/driver.ts, through src/net/relay.ts)
// hands both sockets over and this file moves the bytes with splice() through a pipe, on one epoll
// thread of its own, so no byte and no event crosses into JavaScript until the relay ends.
//
// Ownership of the descriptors (the handover):
//   relayStart() dup()s both fds (F_DUPFD_CLOEXEC) and registers the dups with the relay thread. The
//   caller then destroys its net.Sockets: libuv closes its own fd numbers, and since our dups still
//   refer to the same open sockets, closing them neither sends a FIN nor a reset (a socket is shut down
//   only when its last descriptor goes, or by shutdown()). From then on the dups are the only
//   descriptors of the two sockets and this file closes each exactly once when the relay ends. The
//   caller stops libuv's reading and takes whatever Node already read into its buffers *before* calling
//   relayStart, and passes those bytes in (`initAB`, `initBA`): they are written first, before anything
//   spliced. Writes Node still had queued must be flushed before (the driver waits for that).
//
// What is kept from the JavaScript relay:
//   - half-close: EOF from one side (after its bytes are through) becomes shutdown(SHUT_WR) toward the
//     other; the other direction keeps flowing; the relay ends when both directions ended;
//   - errors (reset, EPIPE) on one side end the relay: the other side gets what is in its pipe (best
//     effort, non-blocking) and a normal close;
//   - the idle timeout: no byte either way for `idleMs` ends the relay (reason "idle");
//   - byte counts per side (read from it, written to it), readable at any time (relayCounts) and final
//     once the relay ended;
//   - the end report (who closed, why, errno) goes to JavaScript through one napi threadsafe function.
//
// relayStop() ends a relay from JavaScript (session abort/kill, daemon stop) synchronously under the
// lock, so the counts it returns are final. Relay memory is freed by the relay thread only after both
// the relay ended and JavaScript learned it (events of one epoll batch may still name a relay that
// JavaScript just stopped; it is skipped, not freed, until the next batch).
//
// Pipes are taken from a small pool only while a direction has bytes in flight, so an idle relay holds
// just its two sockets (capacity: 100k idle connections must not cost 300k descriptors).
#define _GNU_SOURCE
#include <node_api.h>

#include "tzorp_errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define PIPE_POOL_MAX 64
#define SPLICE_CHUNK (1 << 16)
// A direction starts with recv()/send() through COPY_CHUNK bytes of the thread's own buffer: for the
// few hundred bytes of a short connection that is two system calls, where splice() through a pipe is
// four. A read that fills the whole buffer marks the direction as bulk, which splices from then on.
// (A send() that takes less than was read leaves the rest in the direction's pipe, which is empty
// then and holds 64 KiB, so it goes out first, in order.)
#define COPY_CHUNK (1 << 14)
#define MIN_SCAN_MS 20
#define MAX_WAIT_MS 1000

enum { ACTIVE = 0, ENDED = 1, CONNECTING = 2 };
enum { R_CLOSED = 0, R_IDLE = 1, R_ERROR = 2, R_STOPPED = 3, R_CONNECT_FAILED = 4, R_CONNECTED = 5, R_DONE = 6 };
static const char *const REASONS[] = {"closed", "idle", "error", "stopped", "connectFailed", "connected", "done"};

#ifndef SO_MARK
#define SO_MARK 36
#endif
// epoll tags: the eventfd, else a relay's (slot << 1 | side)
#define EVFD_TAG UINT64_MAX
#define HOST_TEXT TZORP_HOST_TEXT

typedef struct relay {
  pthread_mutex_t rmu;  // its state: held by the thread while it pumps, by JavaScript in stop/counts
  uint32_t slot;
  int state;
  bool js_done;  // JavaScript learned the end (stop returned, or the report was delivered)
  int fd[2];     // 0 = side a, 1 = side b
  // direction d copies from fd[d] to fd[1 - d]
  int pipe_r[2], pipe_w[2];
  size_t in_pipe[2];
  bool eof[2];       // fd[d] gave EOF
  bool bulk[2];      // direction d filled a whole COPY_CHUNK once: splice from now on
  bool shut[2];      // shutdown(SHUT_WR) sent to fd[1 - d] (or, see pump, its close will say it)
  // Edge-triggered bookkeeping per side: `drained` = its receive queue was found empty and no event
  // for it came since (a read could only say EAGAIN: skipped); `hup` = its peer's FIN (or a hang-up)
  // was reported once, so a short read no longer means empty: it is read on to the end.
  bool drained[2];
  bool hup[2];
  uint8_t *init[2];  // bytes Node had read from fd[d] already: write them to fd[1 - d] first
  size_t init_len[2], init_off[2];
  double read_n[2], written_n[2];  // read from / written to side i
  int64_t idle_ms, last;
  int64_t connect_deadline;  // CONNECTING: when the connect gives up (ETIMEDOUT)
  int returned_fd;           // connectFailed: the client's descriptor, JavaScript's again
  // One-way body relay (relayStart's `limit`): only direction 0 moves, exactly `left` more bytes are
  // read from fd[0]; then it ends "done". The caller keeps its own descriptors (and its sockets): the
  // end closes only the dups, never shuts a socket down.
  bool oneway;
  // The relay's descriptors are the only ones of their sockets (relayConnect: the addon's own, not
  // dups of Node's): closing them takes them out of the epoll set, no EPOLL_CTL_DEL needed.
  bool sole;
  double left;
  int reason, by, err;
  struct relay *prev, *next;  // the active list (idle scan)
  struct relay *dead_next;
} relay;

typedef struct report {
  uint32_t slot;
  int reason, by, err;
  double counts[4];
  char local[HOST_TEXT];  // R_CONNECTED: the server socket's local address and port
  int local_port;
  struct report *next;  // the relay thread's reports of one epoll batch, posted together
} report;

// Two levels of locks, always taken in this order: `mu` (the slot table, the active and dead lists,
// js_done, js_live's partner state) is held only for lookups and list updates, never across a system
// call on a socket; a relay's `rmu` is held while its sockets are pumped or closed. So a JavaScript
// call waits at most for the one relay it names, and relayStart never waits for the relay thread's
// splices (the thread could be preempted in the middle of one: the JS thread must not stall on that).
// The pipe pool is the relay thread's alone (JavaScript's stop closes the pipes it frees).
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t thread;
static bool started = false;
static int ep = -1, evfd = -1;
static napi_threadsafe_function tsfn = NULL;
// Where relays run (relayMode, chosen before the first relay): on the JavaScript thread's own loop
// (the default, "loop": the relay's epoll set is watched by a uv_poll handle, the idle scan by a
// uv_timer, and reports are delivered at the end of each batch without a thread hop), or on the relay
// thread above ("thread"). The loop saves every session about two context switches and a wake-up of
// each thread: a tenth more new plug connections per core through `tzorp run`, a third more in the
// bare relay (bench/README.md, "The relay on the loop by default"). The thread keeps the bytes of
// relayed sessions moving while JavaScript is busy (a reload's new generation, a long log flush).
static bool on_loop = true;
static uv_poll_t loop_poll;
static uv_timer_t loop_timer;
static napi_env loop_env = NULL;
static napi_ref loop_cb = NULL;
static napi_async_context loop_async = NULL;
static relay **slots = NULL;
static uint32_t nslots = 0;
static uint32_t *free_slots = NULL;
static uint32_t nfree = 0;
static relay *active = NULL;
static relay *dead = NULL;
static uint32_t js_live = 0;  // relays whose end JavaScript has not learned (the tsfn is ref'd while > 0)
static int64_t next_scan = INT64_MAX;
static int pool_r[PIPE_POOL_MAX], pool_w[PIPE_POOL_MAX];
static int npool = 0;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// --- pipes --------------------------------------------------------------------------------------

static bool pipe_get(relay *r, int d) {
  if (r->pipe_r[d] >= 0) return true;
  if (npool > 0) {
    npool--;
    r->pipe_r[d] = pool_r[npool];
    r->pipe_w[d] = pool_w[npool];
    return true;
  }
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return false;
  r->pipe_r[d] = p[0];
  r->pipe_w[d] = p[1];
  return true;
}

// Give an empty pipe back (pooled, on the relay thread only); a pipe that still holds bytes is closed
// (its bytes are dropped).
static void pipe_put(relay *r, int d, bool pool_ok) {
  if (r->pipe_r[d] < 0) return;
  if (pool_ok && r->in_pipe[d] == 0 && npool < PIPE_POOL_MAX) {
    pool_r[npool] = r->pipe_r[d];
    pool_w[npool] = r->pipe_w[d];
    npool++;
  } else {
    close(r->pipe_r[d]);
    close(r->pipe_w[d]);
  }
  r->pipe_r[d] = r->pipe_w[d] = -1;
  r->in_pipe[d] = 0;
}

// --- the relay ----------------------------------------------------------------------------------

static void list_remove(relay *r) {
  if (r->prev) r->prev->next = r->next;
  else if (active == r) active = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

// End a relay (under its rmu): close both sockets exactly once. `reset` = RST instead of FIN. Whoever
// ends it (the state goes ACTIVE -> ENDED once, under rmu) also retires it (below, under mu).
static void end_relay(relay *r, int reason, int by, int err, bool reset) {
  if (r->state == ENDED) return;
  r->state = ENDED;
  r->reason = reason;
  if (r->by < 0) r->by = by;
  r->err = err;
  bool on_thread = on_loop || pthread_equal(pthread_self(), thread);
  for (int i = 0; i < 2; i++) {
    if (r->fd[i] < 0) continue;  // (a failed connect gave the client's back to JavaScript)
    if (reset) {
      struct linger l = {1, 0};
      setsockopt(r->fd[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
    } else if (reason == R_ERROR && i != by) {
      // The healthy side gets what is already in the pipe toward it (best effort, non-blocking).
      int d = 1 - i;
      while (r->in_pipe[d] > 0) {
        ssize_t n = splice(r->pipe_r[d], NULL, r->fd[i], NULL, r->in_pipe[d], SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n <= 0) break;
        r->in_pipe[d] -= (size_t)n;
        r->written_n[i] += (double)n;
      }
    }
    // A dup elsewhere (relayStart's caller still holds the socket) keeps the file and with it the
    // registration: it must go explicitly, or events for a dead slot would keep coming.
    if (!r->sole) epoll_ctl(ep, EPOLL_CTL_DEL, r->fd[i], NULL);
    close(r->fd[i]);
    r->fd[i] = -1;
  }
  for (int d = 0; d < 2; d++) {
    pipe_put(r, d, on_thread);
    free(r->init[d]);
    r->init[d] = NULL;
  }
}

// An ended relay leaves the active list for the dead one (under mu); freed once JavaScript knows.
static void retire(relay *r) {
  list_remove(r);
  r->dead_next = dead;
  dead = r;
}

static void fill_report(relay *r, report *rep) {
  rep->slot = r->slot;
  rep->reason = r->reason;
  rep->by = r->by;
  rep->err = r->err;
  rep->counts[0] = r->read_n[0];
  rep->counts[1] = r->written_n[0];
  rep->counts[2] = r->read_n[1];
  rep->counts[3] = r->written_n[1];
  rep->local[0] = 0;
  rep->local_port = 0;
  rep->next = NULL;
}

// Tell JavaScript (from the relay thread) that a relay ended on its own. The report is filled under
// the relay's rmu (final counts) and posted after the locks are released.
static report *make_report(relay *r) {
  report *rep = malloc(sizeof *rep);
  if (rep) fill_report(r, rep);
  return rep;  // NULL (out of memory): JavaScript still gets the final counts from relayStop/relayCounts
}

// The reports of the relay thread's current batch (its own, no lock): one threadsafe call per batch
// of epoll events instead of one per report. Each call takes the function's queue lock and wakes the
// JavaScript thread; with the relay thread and JavaScript on one CPU, every wake-up is a context
// switch, and a session has two reports (connected, ended).
static report *batch_head = NULL;
static report **batch_tail = &batch_head;

static void post_report(report *rep) {
  if (!rep) return;
  rep->next = NULL;
  *batch_tail = rep;
  batch_tail = &rep->next;
}

static void loop_deliver(report *chain);

// While a relay's end is still to be told, the process stays alive (as a socket keeps it).
static void live_ref(napi_env env, bool on) {
  if (on_loop) {
    if (on) uv_ref((uv_handle_t *)&loop_poll);
    else uv_unref((uv_handle_t *)&loop_poll);
  } else if (on) {
    napi_ref_threadsafe_function(env, tsfn);
  } else {
    napi_unref_threadsafe_function(env, tsfn);
  }
}

static void flush_reports(void) {
  report *chain = batch_head;
  batch_head = NULL;
  batch_tail = &batch_head;
  if (chain && on_loop) loop_deliver(chain);
  else if (chain && napi_call_threadsafe_function(tsfn, chain, napi_tsfn_blocking) != napi_ok) {
    while (chain) {
      report *nx = chain->next;
      free(chain);
      chain = nx;
    }
  }
}

// Move what can move in direction d (fd[d] -> fd[1 - d]) until a socket would block. Returns false
// when the relay ended (error), true otherwise. `t` is the batch's clock. A short read from a source
// that never reported a hang-up means its queue is empty (nginx's rule for edge-triggered epoll: more
// data, or a FIN, arriving later raises a new edge): the source is `drained`, and the recv() that
// would only say EAGAIN is skipped, here and on every pump until its next event.
static bool pump(relay *r, int d, int64_t t) {
  if (r->oneway && d == 1) return true;
  int src = r->fd[d], dst = r->fd[1 - d];
  for (;;) {
    while (r->init_off[d] < r->init_len[d]) {
      ssize_t n = send(dst, r->init[d] + r->init_off[d], r->init_len[d] - r->init_off[d], MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        end_relay(r, R_ERROR, 1 - d, errno, false);
        return false;
      }
      r->init_off[d] += (size_t)n;
      r->written_n[1 - d] += (double)n;
      r->last = t;
    }
    while (r->in_pipe[d] > 0) {
      ssize_t n = splice(r->pipe_r[d], NULL, dst, NULL, r->in_pipe[d], SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        end_relay(r, R_ERROR, 1 - d, errno, false);
        return false;
      }
      r->in_pipe[d] -= (size_t)n;
      r->written_n[1 - d] += (double)n;
      r->last = t;
    }
    if (r->pipe_r[d] >= 0) pipe_put(r, d, true);
    if (r->oneway && r->left <= 0) {
      // Every byte of the body is through. `by` 0: more bytes were behind it in the socket already
      // (the caller treats them as it would had it read them together with the body's end).
      char c;
      bool more = recv(src, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
      end_relay(r, R_DONE, more ? 0 : -1, 0, false);
      return false;
    }
    if (r->eof[d] && r->oneway) {
      end_relay(r, R_CLOSED, d, 0, false);  // the body ended early: the caller decides
      return false;
    }
    if (r->eof[d]) {
      if (!r->shut[d]) {
        r->shut[d] = true;
        // ENOTCONN: the peer is gone already; the other direction finds out by itself. When the other
        // direction is through too, the relay ends now (run_relay) and closes both sockets, and the
        // close of the last descriptor sends this FIN: both receive queues are read to their end, so
        // the close resets nothing. (Not so with dups the caller may still hold.)
        if (!(r->sole && r->shut[1 - d])) shutdown(dst, SHUT_WR);
      }
      return true;
    }
    if (r->drained[d]) return true;  // nothing to read until its next event
    if (!r->bulk[d]) {
      static uint8_t buf[COPY_CHUNK];  // the relay thread's alone: only it pumps
      size_t want = sizeof buf;
      if (r->oneway && r->left < (double)want) want = (size_t)r->left;
      ssize_t n = recv(src, buf, want, MSG_DONTWAIT);
      if (n > 0) {
        if (r->oneway) r->left -= (double)n;
        r->read_n[d] += (double)n;
        r->last = t;
        if (n == (ssize_t)sizeof buf) r->bulk[d] = true;
        ssize_t m = send(dst, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (m < 0) {
          if (errno != EAGAIN && errno != EINTR) {
            end_relay(r, R_ERROR, 1 - d, errno, false);
            return false;
          }
          m = 0;
        }
        r->written_n[1 - d] += (double)m;
        if (m < n) {
          if (!pipe_get(r, d)) {
            end_relay(r, R_ERROR, d, errno, false);
            return false;
          }
          ssize_t w = write(r->pipe_w[d], buf + m, (size_t)(n - m));
          if (w != n - m) {  // cannot happen with an empty pipe; never lose bytes silently
            end_relay(r, R_ERROR, d, w < 0 ? errno : EIO, false);
            return false;
          }
          r->in_pipe[d] += (size_t)w;
        } else if (!r->hup[d] && (size_t)n < want) {
          r->drained[d] = true;
          return true;
        }
        continue;
      }
      if (n == 0) {
        r->eof[d] = true;
        if (r->by < 0) r->by = d;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        r->drained[d] = true;
        return true;
      }
      end_relay(r, R_ERROR, d, errno, false);
      return false;
    }
    if (!pipe_get(r, d)) {
      end_relay(r, R_ERROR, d, errno, false);
      return false;
    }
    size_t want = SPLICE_CHUNK;
    if (r->oneway && r->left < (double)want) want = (size_t)r->left;
    ssize_t n = splice(src, NULL, r->pipe_w[d], NULL, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      if (r->oneway) r->left -= (double)n;
      r->in_pipe[d] += (size_t)n;
      r->read_n[d] += (double)n;
      r->last = t;
      continue;
    }
    if (n == 0) {
      r->eof[d] = true;
      if (r->by < 0) r->by = d;  // who closed first
      continue;
    }
    if (errno == EAGAIN || errno == EINTR) {
      if (errno == EAGAIN) r->drained[d] = true;
      pipe_put(r, d, true);
      return true;
    }
    end_relay(r, R_ERROR, d, errno, false);
    return false;
  }
}

// One event on `side`: only the directions it can move. Readable (or its peer's FIN) feeds the
// direction that reads from it; writable drains the direction that writes to it. (Trying both
// directions on every event cost a splice that could only fail with EAGAIN, per event.) The
// registration itself reports both sockets writable, so both directions start.
static void run_relay(relay *r, int side, uint32_t events, int64_t t) {
  if (r->state != ACTIVE) return;
  // (hang-up or an error whose SO_ERROR was already taken: both, as before, so nothing can stall)
  bool in = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  bool out = (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  if (in) r->drained[side] = false;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) r->hup[side] = true;
  // (the other direction is pumped for the writable side: its source is read unless known drained)
  if (in && !pump(r, side, t)) return;
  if (out && !pump(r, 1 - side, t)) return;
  if (r->shut[0] && r->shut[1]) end_relay(r, R_CLOSED, r->by, 0, false);
}

// --- connecting (relayConnect: the server side is connected here, then relayed) ------------------

// The connect failed (or timed out), under rmu: the server socket is closed, the client's goes back to
// JavaScript unread (it may try another server), and the relay ends with reason connectFailed.
static report *fail_connect(relay *r, int err) {
  r->returned_fd = r->fd[0];
  r->fd[0] = -1;  // JavaScript's again
  end_relay(r, R_CONNECT_FAILED, 1, err, false);
  return make_report(r);
}

// An event on a connecting server socket, under rmu: connected (the relay starts: both sockets are
// watched, the idle clock starts, JavaScript hears `connected` with the local address) or failed.
static report *finish_connect(relay *r, uint32_t events) {
  int e = 0;
  socklen_t len = sizeof e;
  if (getsockopt(r->fd[1], SOL_SOCKET, SO_ERROR, &e, &len) < 0) e = errno;
  if (e == 0 && !(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return NULL;  // not yet
  if (e == 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT)) e = ECONNREFUSED;
  if (e != 0) return fail_connect(r, e);
  // Both sockets are (re)registered below, and epoll reports a socket that is readable already at
  // once: until then there is nothing to read from either (no recv() only to meet EAGAIN).
  r->drained[0] = r->drained[1] = true;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[HOST_TEXT] = "";
  int port = 0;
  if (getsockname(r->fd[1], (struct sockaddr *)&ss, &sl) == 0) tzorp_addr_text(&ss, host, &port);
  r->state = ACTIVE;
  r->last = now_ms();
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.u64 = ((uint64_t)r->slot << 1) | 1};
  int fail = 0;
  if (epoll_ctl(ep, EPOLL_CTL_MOD, r->fd[1], &ev) < 0) fail = errno;
  ev.data.u64 = (uint64_t)r->slot << 1;
  if (!fail && epoll_ctl(ep, EPOLL_CTL_ADD, r->fd[0], &ev) < 0) fail = errno;
  if (fail) {
    end_relay(r, R_ERROR, -1, fail, false);
    return make_report(r);
  }
  report *rep = malloc(sizeof *rep);
  if (rep) {
    fill_report(r, rep);
    rep->reason = R_CONNECTED;
    memcpy(rep->local, host, sizeof host);
    rep->local_port = port;
  }
  // (out of memory: JavaScript does not hear `connected`; the end report still comes)
  // The idle scan must know about this relay's clock now.
  if (r->idle_ms > 0 && r->last + r->idle_ms < next_scan) next_scan = r->last + r->idle_ms;
  return rep;
}

static void scan_idle(int64_t t) {
  int64_t next = INT64_MAX;
  relay *r = active;
  while (r) {
    relay *nx = r->next;
    if (r->state == CONNECTING) {
      if (r->connect_deadline <= t) {
        pthread_mutex_lock(&r->rmu);
        report *rep = fail_connect(r, ETIMEDOUT);
        pthread_mutex_unlock(&r->rmu);
        retire(r);
        post_report(rep);
      } else if (r->connect_deadline < next) {
        next = r->connect_deadline;
      }
    } else if (r->idle_ms > 0) {
      int64_t due = r->last + r->idle_ms;
      if (due <= t) {
        // mu is held: JavaScript cannot hold this rmu now (it takes mu first); the thread is here
        pthread_mutex_lock(&r->rmu);
        end_relay(r, R_IDLE, -1, 0, false);
        report *rep = make_report(r);
        pthread_mutex_unlock(&r->rmu);
        retire(r);
        post_report(rep);
      } else if (due < next) {
        next = due;
      }
    }
    r = nx;
  }
  next_scan = next == INT64_MAX ? INT64_MAX : (next < t + MIN_SCAN_MS ? t + MIN_SCAN_MS : next);
}

static void free_dead(void) {
  relay **pp = &dead;
  while (*pp) {
    relay *r = *pp;
    if (r->js_done) {
      *pp = r->dead_next;
      slots[r->slot] = NULL;
      free_slots[nfree++] = r->slot;
      pthread_mutex_destroy(&r->rmu);
      free(r);
    } else {
      pp = &r->dead_next;
    }
  }
}

// One batch of epoll events (the relay thread's, or the loop's): each relay's sockets are pumped under
// its rmu; the reports go to the batch (flush_reports).
static void run_events(struct epoll_event *evs, int n, int64_t t) {
  // The lock is taken per event, not per batch: a JavaScript call (start, stop, counts) waits for
  // at most one relay's splices, never for a whole batch.
  for (int i = 0; i < n; i++) {
    uint64_t u = evs[i].data.u64;
    if (u == EVFD_TAG) {
      uint64_t x;
      (void)!read(evfd, &x, sizeof x);
      continue;
    }
    uint32_t slot = (uint32_t)(u >> 1);
    int side = (int)(u & 1);
    pthread_mutex_lock(&mu);
    relay *r = slot < nslots ? slots[slot] : NULL;
    if (!r || r->state == ENDED) {  // stopped by JavaScript since epoll_wait returned
      pthread_mutex_unlock(&mu);
      continue;
    }
    pthread_mutex_lock(&r->rmu);
    pthread_mutex_unlock(&mu);
    report *rep = NULL;
    if (r->state == CONNECTING) {
      if (side == 1) rep = finish_connect(r, evs[i].events);
    } else if (r->state == ACTIVE) {
      int e = 0;
      if (evs[i].events & EPOLLERR) {
        socklen_t len = sizeof e;
        getsockopt(r->fd[side], SOL_SOCKET, SO_ERROR, &e, &len);
      }
      if (e != 0) end_relay(r, R_ERROR, side, e, false);
      else run_relay(r, side, evs[i].events, t);
      if (r->state != ACTIVE) rep = make_report(r);
    }
    bool ended = r->state == ENDED;
    pthread_mutex_unlock(&r->rmu);
    if (ended) {
      // r is freed only by the relays' own thread or turn (free_dead), so it is still there
      pthread_mutex_lock(&mu);
      retire(r);
      pthread_mutex_unlock(&mu);
      post_report(rep);
    } else if (rep) {
      post_report(rep);  // connected
    }
  }
}

static void *thread_main(void *arg) {
  struct epoll_event evs[256];
  for (;;) {
    pthread_mutex_lock(&mu);
    free_dead();
    int64_t t = now_ms();
    int wait = MAX_WAIT_MS;
    int64_t due = next_scan;
    if (due != INT64_MAX) {
      int64_t w = due - t;
      wait = w < 0 ? 0 : (w < MAX_WAIT_MS ? (int)w : MAX_WAIT_MS);
    }
    pthread_mutex_unlock(&mu);
    int n = epoll_wait(ep, evs, 256, wait);
    if (n < 0 && errno != EINTR) break;
    t = now_ms();
    run_events(evs, n, t);
    pthread_mutex_lock(&mu);
    if (t >= next_scan) scan_idle(t);
    pthread_mutex_unlock(&mu);
    flush_reports();
  }
  return NULL;
}

// --- the relays on the JavaScript thread's loop (relayMode "loop") -------------------------------

static void on_loop_timer(uv_timer_t *h);

// The timer stands at the next deadline (idle or connect) of any relay, or is stopped.
static void loop_arm(void) {
  if (next_scan == INT64_MAX) {
    uv_timer_stop(&loop_timer);
    return;
  }
  int64_t w = next_scan - now_ms();
  uv_timer_start(&loop_timer, on_loop_timer, w < 0 ? 0 : (uint64_t)w, 0);
}

// One turn: the ready sockets (`poll`), the deadlines that came, the reports to JavaScript, and the
// memory of relays whose end JavaScript learned in it.
static void loop_turn(bool poll) {
  struct epoll_event evs[256];
  for (int rounds = 0; poll && rounds < 4; rounds++) {
    int n = epoll_wait(ep, evs, 256, 0);
    if (n <= 0) break;
    run_events(evs, n, now_ms());
    if (n < 256) break;
  }
  int64_t t = now_ms();
  pthread_mutex_lock(&mu);
  if (t >= next_scan) scan_idle(t);
  pthread_mutex_unlock(&mu);
  flush_reports();
  pthread_mutex_lock(&mu);
  free_dead();
  pthread_mutex_unlock(&mu);
  loop_arm();
}

static void on_loop_poll(uv_poll_t *h, int status, int events) { loop_turn(true); }

static void on_loop_timer(uv_timer_t *h) { loop_turn(false); }

// --- JavaScript side ----------------------------------------------------------------------------

// Runs on the JavaScript thread for each report: onEnd(slot, reason, by, errno, [readA, writtenA,
// readB, writtenB]).
static void deliver_report(napi_env env, napi_value cb, report *rep) {
  {
    pthread_mutex_lock(&mu);
    relay *r = rep->slot < nslots ? slots[rep->slot] : NULL;
    bool deliver = r && !r->js_done;
    bool end = rep->reason != R_CONNECTED;
    if (deliver && end) r->js_done = true;
    pthread_mutex_unlock(&mu);
    if (deliver) {
      if (end && --js_live == 0) live_ref(env, false);
      napi_value argv[7], undef, arr;
      napi_create_uint32(env, rep->slot, &argv[0]);
      napi_create_string_utf8(env, REASONS[rep->reason], NAPI_AUTO_LENGTH, &argv[1]);
      napi_create_int32(env, rep->by, &argv[2]);
      napi_create_int32(env, rep->err, &argv[3]);
      napi_create_array_with_length(env, 4, &arr);
      // counts in side order: read from a, written to a, read from b, written to b
      double c[4] = {rep->counts[0], rep->counts[1], rep->counts[2], rep->counts[3]};
      for (uint32_t i = 0; i < 4; i++) {
        napi_value v;
        napi_create_double(env, c[i], &v);
        napi_set_element(env, arr, i, v);
      }
      argv[4] = arr;
      napi_get_undefined(env, &undef);
      if (rep->reason == R_CONNECTED) {
        napi_create_string_utf8(env, rep->local, NAPI_AUTO_LENGTH, &argv[5]);
        napi_create_int32(env, rep->local_port, &argv[6]);
      } else {
        argv[5] = argv[6] = undef;
      }
      napi_call_function(env, undef, cb, 7, argv, NULL);
    }
  }
}

// A batch of the relay thread's reports, in order. A callback that throws does not cost the reports
// after it: its exception is held, the rest are delivered, then it is thrown (as it would have been).
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  report *rep = data;
  napi_ref held = NULL;
  while (rep) {
    report *nx = rep->next;
    if (env != NULL && cb != NULL) {
      napi_handle_scope scope;
      bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
      deliver_report(env, cb, rep);
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value e;
        napi_get_and_clear_last_exception(env, &e);
        if (held == NULL) napi_create_reference(env, e, 1, &held);  // (it outlives the report's scope)
      }
      if (scoped) napi_close_handle_scope(env, scope);
    }
    free(rep);
    rep = nx;
  }
  if (held != NULL) {
    napi_value e;
    if (napi_get_reference_value(env, held, &e) == napi_ok) napi_throw(env, e);
    napi_delete_reference(env, held);
  }
}

// The loop's batch of reports: delivered as the thread's are (call_js), in one callback scope, so
// process.nextTick and promise jobs run after it as after any of Node's own I/O callbacks; a throw
// goes to the process's uncaughtException, as a throw in such a callback does.
static void loop_deliver(report *chain) {
  napi_env env = loop_env;
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) {
    call_js(NULL, NULL, NULL, chain);  // (frees the reports)
    return;
  }
  napi_value cb, resource;
  napi_callback_scope cs;
  napi_get_reference_value(env, loop_cb, &cb);
  napi_create_object(env, &resource);
  bool scoped = napi_open_callback_scope(env, resource, loop_async, &cs) == napi_ok;
  call_js(env, cb, NULL, chain);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  if (scoped) napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static bool start_on_loop(napi_env env, napi_value on_end) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return tzorp_throw_type(env, "relay: no event loop"), false;
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return tzorp_throw_errno(env, "epoll_create1", errno), false;
  int rc = uv_poll_init(loop, &loop_poll, ep);
  if (rc == 0) rc = uv_poll_start(&loop_poll, UV_READABLE, on_loop_poll);
  if (rc < 0) {
    close(ep);
    ep = -1;
    return tzorp_throw_errno(env, "uv_poll_init", -rc), false;
  }
  uv_unref((uv_handle_t *)&loop_poll);  // (live_ref: only while a relay's end is to be told)
  uv_timer_init(loop, &loop_timer);
  uv_unref((uv_handle_t *)&loop_timer);
  loop_env = env;
  napi_create_reference(env, on_end, 1, &loop_cb);
  napi_value name;
  napi_create_string_utf8(env, "tzorp.relay", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &loop_async);
  started = true;
  return true;
}

static bool ensure_started(napi_env env, napi_value on_end) {
  if (started) return true;
  if (on_loop) return start_on_loop(env, on_end);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return tzorp_throw_errno(env, "epoll_create1", errno), false;
  evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (evfd < 0) {
    int e = errno;
    close(ep);
    return tzorp_throw_errno(env, "eventfd", e), false;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  epoll_ctl(ep, EPOLL_CTL_ADD, evfd, &ev);
  napi_value name;
  napi_create_string_utf8(env, "tzorp relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, on_end, NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn) != napi_ok) {
    close(ep);
    close(evfd);
    return tzorp_throw_type(env, "relayStart: cannot create the threadsafe function"), false;
  }
  napi_unref_threadsafe_function(env, tsfn);
  int rc = pthread_create(&thread, NULL, thread_main, NULL);
  if (rc != 0) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    close(ep);
    close(evfd);
    return tzorp_throw_errno(env, "pthread_create", rc), false;
  }
  pthread_detach(thread);
  started = true;
  return true;
}

static bool get_i64(napi_env env, napi_value v, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_int64(env, v, out) == napi_ok;
}

// Copy a Buffer/Uint8Array argument (or null/undefined) into malloc'd memory.
static bool get_bytes(napi_env env, napi_value v, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return true;
  bool is;
  napi_is_typedarray(env, v, &is);
  if (!is) return false;
  napi_typedarray_type tt;
  size_t n;
  void *data;
  if (napi_get_typedarray_info(env, v, &tt, &n, &data, NULL, NULL) != napi_ok || tt != napi_uint8_array) return false;
  if (n == 0) return true;
  *out = malloc(n);
  if (!*out) return false;
  memcpy(*out, data, n);
  *len = n;
  return true;
}

// A new relay of sockets a and b (no pipes yet, nobody closed first), or NULL (out of memory).
static relay *new_relay(int a, int b) {
  relay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  pthread_mutex_init(&r->rmu, NULL);
  r->fd[0] = a;
  r->fd[1] = b;
  r->pipe_r[0] = r->pipe_r[1] = r->pipe_w[0] = r->pipe_w[1] = -1;
  r->by = -1;
  r->returned_fd = -1;
  return r;
}

// A free slot for r (under mu), the table grown when full; false when out of memory.
static bool take_slot(relay *r) {
  if (nfree == 0) {
    uint32_t n = nslots ? nslots * 2 : 1024;
    relay **s = realloc(slots, n * sizeof *s);
    if (!s) return false;
    slots = s;
    uint32_t *f = realloc(free_slots, n * sizeof *f);
    if (!f) return false;
    free_slots = f;
    for (uint32_t i = n; i > nslots; i--) free_slots[nfree++] = i - 1;
    for (uint32_t i = nslots; i < n; i++) slots[i] = NULL;
    nslots = n;
  }
  r->slot = free_slots[--nfree];
  slots[r->slot] = r;
  return true;
}

// A registered relay joins the active list (mu is held, and released here); the thread is woken when
// `due` (its first deadline) comes before the next scan. Returns its slot for JavaScript.
static napi_value activate(napi_env env, relay *r, int64_t due) {
  r->next = active;
  if (active) active->prev = r;
  active = r;
  bool wake = false;
  if (due < next_scan) {
    next_scan = due;
    wake = true;
  }
  pthread_mutex_unlock(&mu);
  if (js_live++ == 0) live_ref(env, true);
  if (wake && on_loop) {
    loop_arm();
  } else if (wake) {
    uint64_t one = 1;
    (void)!write(evfd, &one, sizeof one);
  }
  napi_value out;
  napi_create_uint32(env, r->slot, &out);
  return out;
}

// relayStart(fdA, fdB, idleMs, initAB: Uint8Array|null, initBA: Uint8Array|null, onEnd[, limit]) -> slot
// The descriptors are duplicated; the caller closes its own (destroys its sockets) after this returns.
// `onEnd` is used by the first call only (one callback for the process).
// With `limit` (>= 0): a one-way body relay. Only A -> B moves: initAB, then exactly `limit` bytes read
// from A (initBA must be null). The caller keeps its descriptors and sockets (it must neither read A
// nor write B meanwhile); the relay ends "done" once every byte is written to B, "closed" (by 0) when
// A ends first, and closes only its dups: no FIN, no reset.
static napi_value RelayStart(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return tzorp_throw_type(env, "relayStart: 6 arguments expected");
  int64_t fa, fb, idle, limit = -1;
  napi_valuetype lt = napi_undefined;
  if (argc >= 7) napi_typeof(env, argv[6], &lt);
  if (lt != napi_undefined && (!get_i64(env, argv[6], &limit) || limit < 0))
    return tzorp_throw_type(env, "relayStart: limit must be a non-negative integer");
  if (!get_i64(env, argv[0], &fa) || !get_i64(env, argv[1], &fb) || fa < 0 || fb < 0 || fa > INT32_MAX ||
      fb > INT32_MAX)
    return tzorp_throw_type(env, "relayStart: fds must be non-negative integers");
  if (!get_i64(env, argv[2], &idle) || idle < 0) return tzorp_throw_type(env, "relayStart: idleMs must be >= 0");
  if (!ensure_started(env, argv[5])) return NULL;
  relay *r = new_relay(-1, -1);
  if (!r) return tzorp_throw_errno(env, "calloc", ENOMEM);
  if (!get_bytes(env, argv[3], &r->init[0], &r->init_len[0]) || !get_bytes(env, argv[4], &r->init[1], &r->init_len[1])) {
    free(r->init[0]);
    pthread_mutex_destroy(&r->rmu);
    free(r);
    return tzorp_throw_type(env, "relayStart: initAB/initBA must be Uint8Array or null");
  }
  if (limit >= 0 && r->init[1]) {
    free(r->init[0]);
    free(r->init[1]);
    pthread_mutex_destroy(&r->rmu);
    free(r);
    return tzorp_throw_type(env, "relayStart: a one-way relay takes no initBA");
  }
  r->oneway = limit >= 0;
  r->left = limit >= 0 ? (double)limit : 0;
  const char *failed = NULL;
  int err = 0;
  r->fd[0] = fcntl((int)fa, F_DUPFD_CLOEXEC, 0);
  if (r->fd[0] < 0) failed = "dup", err = errno;
  if (!failed) {
    r->fd[1] = fcntl((int)fb, F_DUPFD_CLOEXEC, 0);
    if (r->fd[1] < 0) failed = "dup", err = errno;
  }
  // The sockets stay non-blocking (Node set O_NONBLOCK on the open file, shared with the dups).
  pthread_mutex_lock(&mu);
  if (!failed && !take_slot(r)) failed = "realloc", err = ENOMEM;
  if (!failed) {
    r->idle_ms = idle;
    r->last = now_ms();
    for (int i = 0; i < 2 && !failed; i++) {
      // one-way: A is only read and B only written (B's own input is the caller's, unread here)
      uint32_t want = !r->oneway ? EPOLLIN | EPOLLOUT | EPOLLRDHUP : i == 0 ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
      struct epoll_event ev = {.events = want | EPOLLET, .data.u64 = ((uint64_t)r->slot << 1) | (uint64_t)i};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, r->fd[i], &ev) < 0) failed = "epoll_ctl", err = errno;
    }
    if (failed) {
      slots[r->slot] = NULL;
      free_slots[nfree++] = r->slot;
    }
  }
  if (failed) {
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 2; i++) {
      if (r->fd[i] >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, r->fd[i], NULL);
        close(r->fd[i]);
      }
    }
    free(r->init[0]);
    free(r->init[1]);
    pthread_mutex_destroy(&r->rmu);
    free(r);
    return tzorp_throw_errno(env, failed, err);
  }
  // The epoll registration (edge-triggered) reports both sockets ready at once, so bytes already
  // queued in the kernel and the init bytes start moving without any further event.
  return activate(env, r, idle > 0 ? r->last + idle : INT64_MAX);
}

// relayConnect(clientFd, serverFd, host, port, connectTimeoutMs, idleMs, onEnd) -> slot
// Connects serverFd (unconnected, non-blocking, bound and with TCP_NODELAY as the caller wanted:
// socket()'s noDelay) to host:port on the relay
// thread and then relays it with clientFd, which nothing has read yet. Both descriptors are the
// relay's from here (no dup): `connected` (the local address) comes first, then the end as for
// relayStart; or `connectFailed` (errno; ETIMEDOUT after connectTimeoutMs), after which the server
// socket is closed and clientFd is the caller's again, unread. relayStop() at any point closes both.
// A connect() that fails at once throws (the caller still owns both descriptors).
static napi_value RelayConnect(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) return tzorp_throw_type(env, "relayConnect: 7 arguments expected");
  int64_t fc, fs, port, timeout, idle;
  if (!get_i64(env, argv[0], &fc) || !get_i64(env, argv[1], &fs) || fc < 0 || fs < 0 || fc > INT32_MAX ||
      fs > INT32_MAX)
    return tzorp_throw_type(env, "relayConnect: fds must be non-negative integers");
  char host[HOST_TEXT];
  size_t hl = 0;
  napi_valuetype ht;
  napi_typeof(env, argv[2], &ht);
  if (ht != napi_string || napi_get_value_string_utf8(env, argv[2], host, sizeof host, &hl) != napi_ok || hl == 0 ||
      hl >= sizeof host - 1)
    return tzorp_throw_type(env, "relayConnect: host must be an address string");
  if (!get_i64(env, argv[3], &port) || port < 1 || port > 65535)
    return tzorp_throw_type(env, "relayConnect: port must be 1..65535");
  if (!get_i64(env, argv[4], &timeout) || timeout < 1) return tzorp_throw_type(env, "relayConnect: timeout must be >= 1");
  if (!get_i64(env, argv[5], &idle) || idle < 0) return tzorp_throw_type(env, "relayConnect: idleMs must be >= 0");
  struct sockaddr_storage ss;
  socklen_t len;
  if (!tzorp_make_addr(host, (int)port, &ss, &len))
    return tzorp_throw_type(env, "relayConnect: host is not an IPv4/IPv6 address");
  if (!ensure_started(env, argv[6])) return NULL;
  if (connect((int)fs, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
    return tzorp_throw_errno(env, "connect", errno);
  relay *r = new_relay((int)fc, (int)fs);
  if (!r) return tzorp_throw_errno(env, "calloc", ENOMEM);
  r->sole = true;
  r->state = CONNECTING;
  r->idle_ms = idle;
  r->last = now_ms();
  r->connect_deadline = r->last + timeout;
  pthread_mutex_lock(&mu);
  int err = 0;
  if (!take_slot(r)) err = ENOMEM;
  if (!err) {
    // Only the server socket until it is connected: the client is not read before there is a server.
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = ((uint64_t)r->slot << 1) | 1};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, r->fd[1], &ev) < 0) {
      err = errno;
      slots[r->slot] = NULL;
      free_slots[nfree++] = r->slot;
    }
  }
  if (err) {
    pthread_mutex_unlock(&mu);
    pthread_mutex_destroy(&r->rmu);
    free(r);
    return tzorp_throw_errno(env, err == ENOMEM ? "realloc" : "epoll_ctl", err);
  }
  return activate(env, r, r->connect_deadline);
}

static relay *get_relay(napi_env env, napi_value v) {
  int64_t s;
  if (!get_i64(env, v, &s) || s < 0 || (uint64_t)s >= nslots) return NULL;
  relay *r = slots[s];
  return r && !r->js_done ? r : NULL;
}

static napi_value counts_array(napi_env env, relay *r) {
  napi_value arr;
  napi_create_array_with_length(env, 4, &arr);
  double c[4] = {r->read_n[0], r->written_n[0], r->read_n[1], r->written_n[1]};
  for (uint32_t i = 0; i < 4; i++) {
    napi_value v;
    napi_create_double(env, c[i], &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

// relayStop(slot, reset) -> [readA, writtenA, readB, writtenB] (final) when this call ended the relay;
// null when it had ended already (its report is on the way and will still be delivered).
static napi_value RelayStop(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool reset = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &reset);
  napi_value out;
  napi_get_null(env, &out);
  pthread_mutex_lock(&mu);
  relay *r = started ? get_relay(env, argv[0]) : NULL;
  bool stopped = false;
  if (r) {
    pthread_mutex_lock(&r->rmu);  // waits if the thread is pumping this relay right now
    if (r->state != ENDED) {
      end_relay(r, R_STOPPED, -1, 0, reset);
      r->js_done = true;
      out = counts_array(env, r);
      stopped = true;
    }
    else if (r->state == ENDED && r->reason == R_CONNECT_FAILED && r->returned_fd >= 0 && !r->js_done) {
      // The connect failed a moment ago and its report is on the way: the client's descriptor came
      // back to JavaScript, and stopping means closing it (the report is dropped).
      if (reset) {
        struct linger lg = {1, 0};
        setsockopt(r->returned_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      close(r->returned_fd);
      r->returned_fd = -1;
      r->js_done = true;
      stopped = true;
      out = counts_array(env, r);
    }
    pthread_mutex_unlock(&r->rmu);
    if (stopped && r->reason == R_STOPPED) retire(r);  // else the thread retires it
  }
  pthread_mutex_unlock(&mu);
  if (stopped && --js_live == 0) live_ref(env, false);
  return out;
}

// relayCounts(slot) -> [readA, writtenA, readB, writtenB] so far, or null for an unknown/finished relay.
static napi_value RelayCounts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_value out;
  napi_get_null(env, &out);
  if (!started || argc < 1) return out;
  pthread_mutex_lock(&mu);
  relay *r = get_relay(env, argv[0]);
  if (r) {
    pthread_mutex_lock(&r->rmu);
    out = counts_array(env, r);
    pthread_mutex_unlock(&r->rmu);
  }
  pthread_mutex_unlock(&mu);
  return out;
}

// relayMode([mode]) -> "loop" | "thread": where relays run (see on_loop). A mode can be set until the
// first relay starts; setting another one after that throws.
static napi_value RelayMode(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) {
    char m[16];
    size_t ml = 0;
    napi_valuetype t;
    napi_typeof(env, argv[0], &t);
    if (t != napi_string || napi_get_value_string_utf8(env, argv[0], m, sizeof m, &ml) != napi_ok ||
        (strcmp(m, "loop") != 0 && strcmp(m, "thread") != 0))
      return tzorp_throw_type(env, "relayMode: mode must be \"loop\" or \"thread\"");
    bool want = strcmp(m, "loop") == 0;
    if (started && want != on_loop) return tzorp_throw_type(env, "relayMode: relays already run; the mode is fixed");
    on_loop = want;
  }
  napi_value out;
  napi_create_string_utf8(env, on_loop ? "loop" : "thread", NAPI_AUTO_LENGTH, &out);
  return out;
}

// relayActive() -> number of relays whose end JavaScript has not learned yet (tests, metrics).
static napi_value RelayActive(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_uint32(env, js_live, &out);
  return out;
}

// relayPoolFds() -> descriptors of the idle pipes kept for reuse (at most 2 * PIPE_POOL_MAX): counted
// in the process's descriptors, but not held by any relay (resource reports tell them apart).
static napi_value RelayPoolFds(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_uint32(env, 2 * (uint32_t)__atomic_load_n(&npool, __ATOMIC_RELAXED), &out);
  return out;
}

// raiseNofile() -> { soft, hard } after raising the soft RLIMIT_NOFILE to the hard limit.
static napi_value RaiseNofile(napi_env env, napi_callback_info info) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return tzorp_throw_errno(env, "getrlimit", errno);
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = {rl.rlim_max, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  napi_value out, soft, hard;
  napi_create_object(env, &out);
  napi_create_double(env, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur, &soft);
  napi_create_double(env, rl.rlim_max == RLIM_INFINITY ? -1 : (double)rl.rlim_max, &hard);
  napi_set_named_property(env, out, "soft", soft);
  napi_set_named_property(env, out, "hard", hard);
  return out;
}

// Called from tzorp_native.c's module init: adds the relay functions to the addon's exports.
void tzorp_relay_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"relayStart", NULL, RelayStart, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayPoolFds", NULL, RelayPoolFds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayConnect", NULL, RelayConnect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayStop", NULL, RelayStop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayCounts", NULL, RelayCounts, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayMode", NULL, RelayMode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayActive", NULL, RelayActive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raiseNofile", NULL, RaiseNofile, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
