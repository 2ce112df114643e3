/*
 * dockyard-shim: the per-container shim in C, a drop-in for runtime/shim.py (Dockyard's own
 * runtime only; containers of an external runtime keep the Python shim, see api.py).
 *
 * Same argv, same wire protocol, same files as shim.py:
 *   argv      key=value items (lists joined by \x1f; *_fd, pid, log_max_size, log_max_files
 *             are integers), as api.py's _shim_args writes them.
 *   sync      SEQPACKET messages from the container's init: "console" (+ the pty master by
 *             SCM_RIGHTS), "ready", "error CODE MSG"; reported to the CLI on status_fd as
 *             {"pid": N} or {"error": "...", "code": N}.
 *   log       Docker's json-file format with size rotation (log_path, log_path.1, ...).
 *   sock      attach clients: a flags line, then 8-byte frames [type,0,0,0,be32 len]+payload;
 *             shim->client 1 stdout, 2 stderr, 3 exit; client->shim 0 stdin, 4 close stdin,
 *             5 resize "rows cols", 6 cleaned.
 *   exit      <run_dir>/exit.json, then the exit command unless a cleanup client sent CLEANED.
 *
 * Build: cc -O2 -Wall -Wextra -o dockyard-shim shim.c (libc only).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum { T_STDIN = 0, T_STDOUT = 1, T_STDERR = 2, T_EXIT = 3, T_CLOSE_STDIN = 4, T_RESIZE = 5, T_CLEANED = 6 };
#define MAX_STDIN_QUEUE (1u << 20)   /* stop reading clients while more stdin than this waits */
#define MAX_CLIENT_QUEUE (8u << 20)  /* drop a client that lets more output than this pile up */
#define LOG_CHUNK 16384              /* an unterminated line is logged in pieces of this size */
#define IO_SIZE 65536

/* client flags (the first line a client sends) */
enum { F_STDIN = 1, F_STDOUT = 2, F_STDERR = 4, F_STDIN_ONCE = 8, F_CLEANUP = 16 };

/* what an fd registered with epoll is */
enum { H_NONE, H_OUTPUT, H_LISTENER, H_SIGNAL, H_CLIENT, H_STDIN };

/* ---- byte buffers --------------------------------------------------------------------- */

/* A growable buffer; the live bytes are p[off .. off+len). */
typedef struct { char *p; size_t off, len, cap; } buf_t;

static int buf_add(buf_t *b, const void *data, size_t n)
{
    if (b->off + b->len + n > b->cap) {
        if (b->off) { memmove(b->p, b->p + b->off, b->len); b->off = 0; }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 256;
            while (cap < b->len + n) cap *= 2;
            char *p = realloc(b->p, cap);
            if (!p) return -1;
            b->p = p; b->cap = cap;
        }
    }
    if (n) memcpy(b->p + b->off + b->len, data, n);
    b->len += n;
    return 0;
}
static void buf_str(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }
static char *buf_data(buf_t *b) { return b->p + b->off; }
static void buf_drop(buf_t *b, size_t n) { b->off += n; b->len -= n; if (!b->len) b->off = 0; }
static void buf_free(buf_t *b) { free(b->p); memset(b, 0, sizeof *b); }

/* ---- configuration (argv) ------------------------------------------------------------- */

static struct {
    const char *run_dir, *log_path, *remove_run_dir;
    long long log_max_size, log_max_files;
    char **exit_cmd;       /* NULL-terminated, or NULL */
    int pid;
    int stdin_fd, stdout_fd, stderr_fd, sync_fd, status_fd, listen_fd, master_fd;
    bool external;         /* ext_* / child_stdio keys: the Python shim's job */
} cfg = { .run_dir = "", .log_path = "", .remove_run_dir = "", .log_max_size = 0,
          .log_max_files = 1, .pid = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,
          .sync_fd = -1, .status_fd = -1, .listen_fd = -1, .master_fd = -1 };

static char **split_list(char *v)
{
    size_t n = 1;
    for (char *s = v; *s; s++) n += *s == '\x1f';
    char **out = calloc(n + 1, sizeof *out);
    if (!out) return NULL;
    if (!*v) return out;  /* "" is the empty list */
    n = 0;
    for (char *s = v;; ) {
        char *sep = strchr(s, '\x1f');
        out[n++] = s;
        if (!sep) break;
        *sep = 0;
        s = sep + 1;
    }
    return out;
}

static void parse_config(int argc, char **argv)
{
    /* argv is left as it is: /proc/PID/cmdline keeps showing the configuration */
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *eq = strchr(k, '=');
        const char *v = eq ? eq + 1 : "";
        size_t kl = eq ? (size_t)(eq - k) : strlen(k);
        long long n = strtoll(v, NULL, 10);
#define KEY(name) (kl == sizeof(name) - 1 && !memcmp(k, name, kl))
        if (KEY("run_dir")) cfg.run_dir = v;
        else if (KEY("log_path")) cfg.log_path = v;
        else if (KEY("remove_run_dir")) cfg.remove_run_dir = v;
        else if (KEY("log_max_size")) cfg.log_max_size = n;
        else if (KEY("log_max_files")) cfg.log_max_files = n;
        else if (KEY("exit_cmd")) { char *copy = strdup(v); cfg.exit_cmd = copy ? split_list(copy) : NULL; }
        else if (KEY("pid")) cfg.pid = (int)n;
        else if (KEY("stdin_fd")) cfg.stdin_fd = (int)n;
        else if (KEY("stdout_fd")) cfg.stdout_fd = (int)n;
        else if (KEY("stderr_fd")) cfg.stderr_fd = (int)n;
        else if (KEY("sync_fd")) cfg.sync_fd = (int)n;
        else if (KEY("status_fd")) cfg.status_fd = (int)n;
        else if (KEY("listen_fd")) cfg.listen_fd = (int)n;
        else if (!strncmp(k, "ext_", 4) || KEY("child_stdio")) cfg.external = true;
#undef KEY
    }
    /* Our descriptors must never reach the exit command (it also closes them, belt and braces). */
    int fds[] = { cfg.stdin_fd, cfg.stdout_fd, cfg.stderr_fd, cfg.sync_fd, cfg.status_fd, cfg.listen_fd };
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        if (fds[i] >= 0) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
}

/* ---- small helpers -------------------------------------------------------------------- */

static void set_nonblock(int fd) { int fl = fcntl(fd, F_GETFL); if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK); }

/* write everything (blocking fd); -1 on error */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-01-02T03:04:05.123456789Z" (Docker's RFC 3339 with nanoseconds, UTC) */
static void rfc3339_now(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

/*
 * Append s[0..n) as the inside of a JSON string, exactly as shim_log.py's
 * jstr(bytes.decode("utf-8", "replace")) does: invalid UTF-8 becomes U+FFFD, one per maximal
 * invalid subpart (CPython's rule: a lead byte plus the continuation bytes that were still
 * valid for it); control characters, '"' and '\' are escaped, and U+2028/U+2029 too.
 */
static void json_escape(buf_t *o, const unsigned char *s, size_t n)
{
    static const char fffd[] = "\xef\xbf\xbd";
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            size_t j = i;  /* copy a run of plain ASCII at once */
            while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\') j++;
            if (j > i) { buf_add(o, s + i, j - i); i = j; continue; }
            char esc[8];
            switch (c) {
            case '"': buf_str(o, "\\\""); break;
            case '\\': buf_str(o, "\\\\"); break;
            case '\n': buf_str(o, "\\n"); break;
            case '\r': buf_str(o, "\\r"); break;
            case '\t': buf_str(o, "\\t"); break;
            case '\b': buf_str(o, "\\b"); break;
            case '\f': buf_str(o, "\\f"); break;
            default: snprintf(esc, sizeof esc, "\\u%04x", c); buf_str(o, esc);
            }
            i++;
            continue;
        }
        size_t need;                 /* continuation bytes this lead byte wants */
        unsigned lo = 0x80, hi = 0xBF;  /* the range allowed for the next one */
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else { buf_add(o, fffd, 3); i++; continue; }  /* 80-C1, F5-FF never start a character */
        size_t k = 1;
        while (k <= need && i + k < n && s[i + k] >= lo && s[i + k] <= hi) { lo = 0x80; hi = 0xBF; k++; }
        if (k <= need) { buf_add(o, fffd, 3); i += k; continue; }  /* broken or cut short */
        if (c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
            buf_str(o, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
        else
            buf_add(o, s + i, k);
        i += k;
    }
}

/* write_atomic: path.tmp, fsync, rename (as shim_loop.py) */
static void write_atomic(const char *path, const char *data)
{
    char *tmp;
    if (asprintf(&tmp, "%s.tmp", path) < 0) return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int bad = fd < 0 || write_all(fd, data, strlen(data)) < 0 || fsync(fd) < 0;
    if (fd >= 0) close(fd);
    if (bad || rename(tmp, path) < 0) fprintf(stderr, "shim: %s: %s\n", path, strerror(errno));
    free(tmp);
}

/* ---- the json-file log ---------------------------------------------------------------- */

static struct {
    bool on;            /* false: no log (exec sessions) */
    int fd;
    long long size, max_size, max_files;
    buf_t partial[3];   /* by stream: 1 stdout, 2 stderr */
    buf_t rec;          /* scratch for one record */
} lg;

static int log_open(void)
{
    return open(cfg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

static void log_rotate(void)
{
    close(lg.fd);
    if (lg.max_files <= 1) {
        if (truncate(cfg.log_path, 0) < 0) fprintf(stderr, "shim: truncate log: %s\n", strerror(errno));
    } else {  /* path.N-1 -> path.N, ..., path -> path.1; a missing one (ENOENT) is fine */
        for (long long i = lg.max_files - 1; i > 0; i--) {
            char *src = NULL, *dst = NULL;
            if ((i == 1 ? asprintf(&src, "%s", cfg.log_path) : asprintf(&src, "%s.%lld", cfg.log_path, i - 1)) >= 0
                && asprintf(&dst, "%s.%lld", cfg.log_path, i) >= 0)
                rename(src, dst);
            free(src);
            free(dst);
        }
    }
    lg.fd = log_open();
    lg.size = 0;
}

/* one record: {"log":"...","stream":"stdout","time":"..."}\n */
static void log_record(int stream, const char *chunk, size_t n)
{
    char ts[40];
    rfc3339_now(ts);
    lg.rec.len = lg.rec.off = 0;
    buf_str(&lg.rec, "{\"log\":\"");
    json_escape(&lg.rec, (const unsigned char *)chunk, n);
    buf_str(&lg.rec, stream == T_STDOUT ? "\",\"stream\":\"stdout\",\"time\":\"" : "\",\"stream\":\"stderr\",\"time\":\"");
    buf_str(&lg.rec, ts);
    buf_str(&lg.rec, "\"}\n");
    if (lg.max_size > 0 && lg.size + (long long)lg.rec.len > lg.max_size && lg.size > 0)
        log_rotate();
    if (lg.fd >= 0 && write_all(lg.fd, buf_data(&lg.rec), lg.rec.len) < 0)
        fprintf(stderr, "shim: write log: %s\n", strerror(errno));
    lg.size += (long long)lg.rec.len;
}

/* Complete lines become records; an unterminated rest waits, logged in LOG_CHUNK pieces once
 * it is that long, or all of it when `final`. */
static void log_write(int stream, const char *data, size_t n, bool final)
{
    if (!lg.on) return;
    buf_t *p = &lg.partial[stream];
    const char *nl;
    while ((nl = memchr(data, '\n', n)) != NULL) {
        size_t k = (size_t)(nl - data) + 1;
        if (p->len) {
            buf_add(p, data, k);
            log_record(stream, buf_data(p), p->len);
            p->len = p->off = 0;
        } else {
            log_record(stream, data, k);
        }
        data += k;
        n -= k;
    }
    buf_add(p, data, n);
    if (final && p->len) {
        log_record(stream, buf_data(p), p->len);
        p->len = p->off = 0;
    }
    while (p->len >= LOG_CHUNK) {
        log_record(stream, buf_data(p), LOG_CHUNK);
        buf_drop(p, LOG_CHUNK);
    }
}

static void log_close(void)
{
    if (!lg.on) return;
    log_write(T_STDOUT, "", 0, true);
    log_write(T_STDERR, "", 0, true);
    if (lg.fd >= 0) close(lg.fd);
    lg.on = false;
}

/* ---- shim state ----------------------------------------------------------------------- */

typedef struct client {
    int fd;
    int flags;
    bool have_flags, paused;
    buf_t in, out;
    struct client *next;
} client_t;

static struct {
    bool tty;
    int ep, master, sig_r, sig_w;
    int out_fd[3];            /* by stream; -1 once at EOF */
    int stdin_fd;             /* pipe, or the pty master; -1 when closed */
    buf_t stdin_buf;
    bool stdin_watched, stdin_close_pending;
    client_t *clients;        /* in connection order */
    int exit_code;            /* -1 while the process runs */
    char finished_at[40];
    bool exit_written;
    struct { unsigned char kind; uint32_t events; client_t *c; } *h;  /* epoll handlers by fd */
    int nh;
} S = { .ep = -1, .master = -1, .sig_r = -1, .sig_w = -1, .out_fd = { -1, -1, -1 },
        .stdin_fd = -1, .exit_code = -1 };

static char iobuf[IO_SIZE];

static int kind_of(int fd) { return fd >= 0 && fd < S.nh ? S.h[fd].kind : H_NONE; }

static void watch(int fd, uint32_t events, int kind, client_t *c)
{
    if (fd >= S.nh) {
        int n = fd + 64;
        void *h = realloc(S.h, (size_t)n * sizeof *S.h);
        if (!h) { fprintf(stderr, "shim: out of memory\n"); return; }
        S.h = h;
        memset(S.h + S.nh, 0, (size_t)(n - S.nh) * sizeof *S.h);
        S.nh = n;
    }
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (S.h[fd].kind && S.h[fd].events == events) { /* unchanged: spare the syscall */ }
    else if (epoll_ctl(S.ep, S.h[fd].kind ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) {
        fprintf(stderr, "shim: epoll_ctl %d: %s\n", fd, strerror(errno));
        return;
    }
    S.h[fd].kind = (unsigned char)kind;
    S.h[fd].events = events;
    S.h[fd].c = c;
}

static void unwatch(int fd)
{
    if (kind_of(fd) == H_NONE) return;
    epoll_ctl(S.ep, EPOLL_CTL_DEL, fd, NULL);
    S.h[fd].kind = H_NONE;
    S.h[fd].c = NULL;
}

static int n_outputs(void) { return (S.out_fd[T_STDOUT] >= 0) + (S.out_fd[T_STDERR] >= 0); }

/* ---- reaping -------------------------------------------------------------------------- */

/* Collect the process's exit status (waiting for it if `block`) and record it once. */
static void reap(bool block)
{
    while (S.exit_code < 0) {
        int st;
        pid_t r = waitpid(cfg.pid, &st, block ? 0 : WNOHANG);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != ECHILD) { fprintf(stderr, "shim: waitpid: %s\n", strerror(errno)); break; }
        if (r == 0) break;
        S.exit_code = r < 0 ? 255 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        rfc3339_now(S.finished_at);
    }
    if (S.exit_code >= 0 && !S.exit_written) {
        char *path, rec[128];
        S.exit_written = true;
        snprintf(rec, sizeof rec, "{\"exit_code\": %d, \"finished_at\": \"%s\"}", S.exit_code, S.finished_at);
        if (asprintf(&path, "%s/exit.json", cfg.run_dir) >= 0) { write_atomic(path, rec); free(path); }
    }
}

static void on_sigchld(int sig)
{
    int saved = errno;
    char b = (char)sig;
    if (write(S.sig_w, &b, 1) < 0) { /* full: a wake-up is pending anyway */ }
    errno = saved;
}

static void on_signal(void)
{
    while (read(S.sig_r, iobuf, sizeof iobuf) > 0) {}
    reap(false);
}

/* ---- clients -------------------------------------------------------------------------- */

static void free_client(client_t *c)
{
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

static void drop(client_t *c)
{
    unwatch(c->fd);
    for (client_t **pp = &S.clients; *pp; pp = &(*pp)->next)
        if (*pp == c) { *pp = c->next; break; }
    free_client(c);
}

/* Send what is queued without blocking; false if the client was dropped. */
static bool client_flush(client_t *c)
{
    if (c->out.len) {
        ssize_t n = send(c->fd, buf_data(&c->out), c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) { drop(c); return false; }
        if (n > 0) buf_drop(&c->out, (size_t)n);
    }
    if (kind_of(c->fd) == H_CLIENT)
        watch(c->fd, EPOLLIN | (c->out.len ? EPOLLOUT : 0), H_CLIENT, c);
    return true;
}

static void put_header(char h[8], int kind, uint32_t len)
{
    h[0] = (char)kind; h[1] = h[2] = h[3] = 0;
    h[4] = (char)(len >> 24); h[5] = (char)(len >> 16); h[6] = (char)(len >> 8); h[7] = (char)len;
}

/* Queue a frame for c and try to send it; false if the client was dropped. */
static bool send_frame(client_t *c, int kind, const char *data, size_t n)
{
    char h[8];
    if (c->out.len > MAX_CLIENT_QUEUE) { drop(c); return false; }  /* not reading: the log has it */
    put_header(h, kind, (uint32_t)n);
    if (buf_add(&c->out, h, 8) < 0 || buf_add(&c->out, data, n) < 0) { drop(c); return false; }
    return client_flush(c);
}

/* "stdin=1 stdout=1 stderr=1 stdin_once=0 cleanup=0": whitespace-separated key=value, "1" is on */
static int parse_flags(char *line, size_t n)
{
    static const struct { const char *k; int f; } names[] = {
        { "stdin", F_STDIN }, { "stdout", F_STDOUT }, { "stderr", F_STDERR },
        { "stdin_once", F_STDIN_ONCE }, { "cleanup", F_CLEANUP } };
    int flags = 0;
    size_t i = 0;
#define SPACE(ch) ((ch) == ' ' || ((ch) >= 0x09 && (ch) <= 0x0d) || ((ch) >= 0x1c && (ch) <= 0x1f))
    while (i < n) {  /* Python's str.split(): ASCII whitespace and \x1c-\x1f */
        while (i < n && SPACE(line[i])) i++;
        size_t s = i;
        while (i < n && !SPACE(line[i])) i++;
        if (i == s) break;
        char *eq = memchr(line + s, '=', i - s);
        size_t kl = eq ? (size_t)(eq - line) - s : i - s;
        bool on = eq && i - s - kl - 1 == 1 && eq[1] == '1';
        for (size_t j = 0; j < sizeof names / sizeof *names; j++)
            if (strlen(names[j].k) == kl && !memcmp(names[j].k, line + s, kl))
                flags = on ? flags | names[j].f : flags & ~names[j].f;
    }
#undef SPACE
    return flags;
}

/* ---- stdin ---------------------------------------------------------------------------- */

static void close_stdin(void);

/* Non-blocking: a container that does not read its stdin must not stall the loop; input
 * waits in stdin_buf (and clients are paused while it holds more than MAX_STDIN_QUEUE). */
static void flush_stdin(void)
{
    int fd = S.stdin_fd;
    while (S.stdin_buf.len && fd >= 0) {
        size_t n = S.stdin_buf.len < IO_SIZE ? S.stdin_buf.len : IO_SIZE;
        ssize_t w = write(fd, buf_data(&S.stdin_buf), n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) break;
        if (w < 0) { S.stdin_buf.len = S.stdin_buf.off = 0; break; }
        buf_drop(&S.stdin_buf, (size_t)w);
    }
    if (!S.tty) {
        bool want = S.stdin_buf.len && fd >= 0;
        if (want && !S.stdin_watched) { watch(fd, EPOLLOUT, H_STDIN, NULL); S.stdin_watched = true; }
        else if (!want && S.stdin_watched) { unwatch(fd); S.stdin_watched = false; }
    }
    if (S.stdin_buf.len <= MAX_STDIN_QUEUE)
        for (client_t *c = S.clients; c; c = c->next)
            if (c->paused) {
                c->paused = false;
                watch(c->fd, EPOLLIN | (c->out.len ? EPOLLOUT : 0), H_CLIENT, c);
            }
    if (!S.stdin_buf.len && S.stdin_close_pending) {
        S.stdin_close_pending = false;
        close_stdin();
    }
}

static void write_stdin(const char *data, size_t n)
{
    if (S.stdin_fd < 0) return;
    if (buf_add(&S.stdin_buf, data, n) < 0) fprintf(stderr, "shim: stdin dropped: out of memory\n");
    flush_stdin();
}

/* End the container's input: close the pipe, after what is queued; a terminal gets ^D. */
static void close_stdin(void)
{
    if (S.stdin_buf.len) { S.stdin_close_pending = true; return; }
    if (S.stdin_fd >= 0 && !S.tty) {
        if (S.stdin_watched) { unwatch(S.stdin_fd); S.stdin_watched = false; }
        close(S.stdin_fd);
        S.stdin_fd = -1;
    } else if (S.tty) {
        if (write(S.master, "\x04", 1) < 0) { /* the terminal is gone */ }
    }
}

/* RESIZE payload "rows cols" (two integers, as Python's int() reads them) -> TIOCSWINSZ on
 * the pty master; anything else is ignored */
static void resize(const char *payload, size_t n)
{
    char text[64];
    long rows, cols;
    int end = -1;
    if (!S.tty || n >= sizeof text || memchr(payload, 0, n)) return;
    memcpy(text, payload, n);
    text[n] = 0;
    if (sscanf(text, "%ld %ld %n", &rows, &cols, &end) != 2 || end < 0 || text[end]
        || rows < 0 || rows > 65535 || cols < 0 || cols > 65535)
        return;
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    ioctl(S.master, TIOCSWINSZ, &ws);
}

/* ---- client input --------------------------------------------------------------------- */

static void client_process(client_t *c)
{
    if (!c->have_flags) {
        char *nl = c->in.len ? memchr(buf_data(&c->in), '\n', c->in.len) : NULL;
        if (!nl) return;
        size_t k = (size_t)(nl - buf_data(&c->in));
        c->flags = parse_flags(buf_data(&c->in), k);
        c->have_flags = true;
        buf_drop(&c->in, k + 1);
        char code[16];
        int cl = snprintf(code, sizeof code, "%d", S.exit_code);
        if (S.exit_code >= 0 && !n_outputs() && !send_frame(c, T_EXIT, code, (size_t)cl)) return;
    }
    while (c->in.len >= 8) {
        const unsigned char *h = (const unsigned char *)buf_data(&c->in);
        uint32_t len = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
        if (c->in.len - 8 < len) break;
        const char *payload = (const char *)h + 8;
        if (h[0] == T_STDIN) write_stdin(payload, len);
        else if (h[0] == T_CLOSE_STDIN) close_stdin();
        else if (h[0] == T_RESIZE) resize(payload, len);
        buf_drop(&c->in, 8 + (size_t)len);
    }
}

static void client_read(client_t *c)
{
    if (S.stdin_buf.len > MAX_STDIN_QUEUE) {
        /* the container is not keeping up with its stdin: stop reading this client until
         * the queue drains (flush_stdin resumes it) */
        unwatch(c->fd);
        c->paused = true;
        return;
    }
    ssize_t n = recv(c->fd, iobuf, sizeof iobuf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        /* A non-tty stdin-once client going away ends the container's input (Docker's
         * StdinOnce); a terminal is left open: a detach or a killed CLI sends no EOF. */
        if (c->have_flags && (c->flags & F_STDIN) && (c->flags & F_STDIN_ONCE) && !S.tty)
            close_stdin();
        drop(c);
        return;
    }
    if (buf_add(&c->in, iobuf, (size_t)n) < 0) { drop(c); return; }
    client_process(c);
}

static void client_event(client_t *c, uint32_t ev)
{
    if ((ev & EPOLLOUT) && !client_flush(c)) return;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) client_read(c);
}

static void accept_client(void)
{
    int fd = accept4(cfg.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    client_t *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return; }
    c->fd = fd;
    /* Clients send their flags right after connecting: read them now (2 s per read, as
     * shim_loop.py), so output already waiting is routed to this client rather than dropped. */
    while (!c->in.len || !memchr(buf_data(&c->in), '\n', c->in.len)) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 2000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        ssize_t n = recv(fd, iobuf, sizeof iobuf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0 || buf_add(&c->in, iobuf, (size_t)n) < 0) break;
    }
    client_t **pp = &S.clients;
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    watch(fd, EPOLLIN, H_CLIENT, c);
    client_process(c);
}

/* ---- container output ----------------------------------------------------------------- */

static void read_output(int fd)
{
    int stream = fd == S.out_fd[T_STDOUT] ? T_STDOUT : T_STDERR;
    ssize_t n = read(fd, iobuf, sizeof iobuf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  /* EOF, or EIO on a pty master whose slave side is gone */
        unwatch(fd);
        S.out_fd[stream] = -1;
        if (fd != S.stdin_fd) close(fd);
        return;
    }
    log_write(stream, iobuf, (size_t)n, false);
    int want = stream == T_STDOUT ? F_STDOUT : F_STDERR;
    for (client_t *c = S.clients, *next; c; c = next) {
        next = c->next;
        if (c->have_flags && (c->flags & want)) send_frame(c, stream, iobuf, (size_t)n);
    }
}

/* ---- start-up: the init's sync messages ----------------------------------------------- */

static void report(const char *text)
{
    if (cfg.status_fd < 0) return;
    if (write_all(cfg.status_fd, text, strlen(text)) < 0)
        fprintf(stderr, "shim: status pipe: %s\n", strerror(errno));
    close(cfg.status_fd);
    cfg.status_fd = -1;
}

/* Read "console" (+ pty master), "ready" or "error CODE MSG" from the init and report the
 * pid (or the error) on status_fd. False when the init failed (it has been reaped). */
static bool wait_init_ready(void)
{
    for (;;) {
        union { char b[CMSG_SPACE(4 * sizeof(int))]; struct cmsghdr align; } ctl;
        struct iovec iov = { .iov_base = iobuf, .iov_len = sizeof iobuf };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
        ssize_t n = recvmsg(cfg.sync_fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            n = snprintf(iobuf, sizeof iobuf, "error 125 container init: %s", strerror(errno));
            mh.msg_controllen = 0;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            int fds[4];
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(cm), (k > 4 ? 4 : k) * sizeof(int));
            for (size_t i = 0; i < k && i < 4; i++) {
                if (i == 0) { if (cfg.master_fd >= 0) close(cfg.master_fd); cfg.master_fd = fds[0]; }
                else close(fds[i]);
            }
        }
        if (n == 5 && !memcmp(iobuf, "ready", 5)) {
            char msg[64];
            close(cfg.sync_fd);
            cfg.sync_fd = -1;
            snprintf(msg, sizeof msg, "{\"pid\": %d}", cfg.pid);
            report(msg);
            return true;
        }
        if (n == 0 || (n >= 6 && !memcmp(iobuf, "error ", 6))) {
            const char *code = "125", *text = "";
            size_t code_len = 3, text_len = 0;
            if (n > 0) {
                char *s = iobuf + 6, *end = iobuf + n, *sp = memchr(s, ' ', (size_t)(end - s));
                code = s;
                code_len = (size_t)((sp ? sp : end) - s);
                if (sp) { text = sp + 1; text_len = (size_t)(end - sp - 1); }
                bool digits = code_len > 0;
                for (size_t i = 0; i < code_len; i++) digits = digits && code[i] >= '0' && code[i] <= '9';
                if (!digits) { code = "125"; code_len = 3; }
                while (code_len > 1 && code[0] == '0') { code++; code_len--; }  /* int(code) */
            }
            if (!text_len) { text = "container init exited before it was ready"; text_len = strlen(text); }
            buf_t out = { 0 };
            buf_str(&out, "{\"error\": \"");
            json_escape(&out, (const unsigned char *)text, text_len);
            buf_str(&out, "\", \"code\": ");
            buf_add(&out, code, code_len);
            buf_str(&out, "}");
            buf_add(&out, "", 1);
            report(out.p ? out.p : "{\"error\": \"shim: out of memory\", \"code\": 125}");
            buf_free(&out);
            close(cfg.sync_fd);
            if (cfg.master_fd >= 0) close(cfg.master_fd);
            while (waitpid(cfg.pid, NULL, 0) < 0 && errno == EINTR) {}
            return false;
        }
    }
}

/* ---- exit ----------------------------------------------------------------------------- */

/* blocking send of everything before the deadline (ms, CLOCK_MONOTONIC) */
static int send_all(int fd, const char *p, size_t n, long long deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
        long long left = deadline - now_ms();
        struct pollfd pf = { .fd = fd, .events = POLLOUT };
        if (left <= 0 || poll(&pf, 1, (int)left) == 0) return -1;
    }
    return 0;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p;
        struct stat st;
        if (asprintf(&p, "%s/%s", path, e->d_name) < 0) continue;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}

/* Run argv detached (double fork, new session, stdio on /dev/null, no inherited fds). */
static void spawn_detached(char **argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() == 0) {
            int dn = open("/dev/null", O_RDWR);
            if (dn >= 0) { dup2(dn, 0); dup2(dn, 1); dup2(dn, 2); }
#ifdef SYS_close_range
            if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
#endif
                for (int fd = 3; fd < 65536; fd++) close(fd);
            execv(argv[0], argv);
        }
        _exit(0);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

static void finish(void)
{
    log_close();
    if (S.exit_code < 0) S.exit_code = 255;
    char msg[24];
    int ml = snprintf(msg + 8, sizeof msg - 8, "%d", S.exit_code);
    put_header(msg, T_EXIT, (uint32_t)ml);
    /* Everyone gets what is queued plus the exit frame (5 s each at most). A client that
     * promised to clean up (the foreground `run`) does the exit work itself; the exit
     * command runs only if no such client confirms it did (CLEANED, within 60 s). */
    client_t *cleaners = NULL, **tail = &cleaners;
    while (S.clients) {
        client_t *c = S.clients;
        S.clients = c->next;
        unwatch(c->fd);
        long long deadline = now_ms() + 5000;
        bool ok = send_all(c->fd, buf_data(&c->out), c->out.len, deadline) == 0
                  && send_all(c->fd, msg, 8 + (size_t)ml, deadline) == 0;
        if (ok && c->have_flags && (c->flags & F_CLEANUP)) { c->next = NULL; *tail = c; tail = &c->next; }
        else free_client(c);
    }
    bool cleaned = false;
    while (cleaners) {
        client_t *c = cleaners;
        cleaners = c->next;
        unsigned char data[8];
        size_t got = 0;
        while (got < 8) {
            struct pollfd pf = { .fd = c->fd, .events = POLLIN };
            int r = poll(&pf, 1, 60000);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            ssize_t n = recv(c->fd, data + got, 8 - got, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        cleaned = cleaned || (got == 8 && data[0] == T_CLEANED);
        free_client(c);
    }
    char *path;
    if (asprintf(&path, "%s/sock", cfg.run_dir) >= 0) { unlink(path); free(path); }
    close(cfg.listen_fd);
    if (!strcmp(cfg.remove_run_dir, "1")) remove_tree(cfg.run_dir);
    if (cfg.exit_cmd && cfg.exit_cmd[0] && !cleaned) spawn_detached(cfg.exit_cmd);
}

/* ---- main loop ------------------------------------------------------------------------ */

static void dispatch(int fd, uint32_t ev)
{
    switch (kind_of(fd)) {
    case H_OUTPUT: read_output(fd); break;
    case H_LISTENER: accept_client(); break;
    case H_SIGNAL: on_signal(); break;
    case H_CLIENT: client_event(S.h[fd].c, ev); break;
    case H_STDIN: flush_stdin(); break;
    default: break;  /* unwatched by an earlier event of this batch */
    }
}

static void shim_init(void)
{
    S.ep = epoll_create1(EPOLL_CLOEXEC);
    if (S.ep < 0) { fprintf(stderr, "shim: epoll: %s\n", strerror(errno)); return; }
    if (cfg.log_path[0]) {
        lg.max_size = cfg.log_max_size;
        lg.max_files = cfg.log_max_files < 1 ? 1 : cfg.log_max_files;
        lg.fd = log_open();
        struct stat st;
        if (lg.fd < 0) fprintf(stderr, "shim: %s: %s\n", cfg.log_path, strerror(errno));
        lg.size = lg.fd >= 0 && fstat(lg.fd, &st) == 0 ? st.st_size : 0;
        lg.on = lg.fd >= 0;
    }
    S.tty = cfg.master_fd >= 0;
    if (S.tty) {
        S.master = S.stdin_fd = S.out_fd[T_STDOUT] = cfg.master_fd;
    } else {
        S.out_fd[T_STDOUT] = cfg.stdout_fd;
        S.out_fd[T_STDERR] = cfg.stderr_fd;
        S.stdin_fd = cfg.stdin_fd;
        if (S.stdin_fd >= 0) set_nonblock(S.stdin_fd);
    }
    for (int s = T_STDOUT; s <= T_STDERR; s++)
        if (S.out_fd[s] >= 0) { set_nonblock(S.out_fd[s]); watch(S.out_fd[s], EPOLLIN, H_OUTPUT, NULL); }
    /* bound and listening already: the runtime made it before exec'ing us */
    set_nonblock(cfg.listen_fd);
    watch(cfg.listen_fd, EPOLLIN, H_LISTENER, NULL);
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
        S.sig_r = p[0];
        S.sig_w = p[1];
        watch(S.sig_r, EPOLLIN, H_SIGNAL, NULL);
    }
    struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

static void run(void)
{
    struct epoll_event evs[64];
    reap(false);
    while (n_outputs() || S.exit_code < 0) {
        errno = EBADF;
        int n = S.ep < 0 ? -1 : epoll_wait(S.ep, evs, 64, S.exit_code < 0 ? -1 : 2000);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {  /* cannot serve: still reap and record before leaving */
            fprintf(stderr, "shim: epoll_wait: %s\n", strerror(errno));
            reap(true);
            break;
        }
        if (n == 0 && S.exit_code >= 0) break;  /* output held open by an escaped process */
        /* Accept waiting clients before reading output: a client that connected before the
         * container started must see its first bytes. */
        for (int i = 0; i < n; i++)
            if (evs[i].data.fd == cfg.listen_fd) dispatch(evs[i].data.fd, evs[i].events);
        for (int i = 0; i < n; i++)
            if (evs[i].data.fd != cfg.listen_fd) dispatch(evs[i].data.fd, evs[i].events);
    }
    finish();
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);  /* as the Python shim: its interpreter ignores these two */
    signal(SIGXFSZ, SIG_IGN);
    parse_config(argc, argv);
    if (cfg.external || cfg.pid <= 0 || cfg.listen_fd < 0) {
        /* api.py runs the Python shim for external runtimes; never half-serve one */
        report(cfg.external ? "{\"error\": \"shim: an external runtime needs the Python shim\", \"code\": 125}"
                            : "{\"error\": \"shim: no pid or listen_fd given\", \"code\": 125}");
        return 1;
    }
    if (chdir("/") < 0) { /* as shim.py: best effort */ }
    if (cfg.sync_fd >= 0 && !wait_init_ready()) return 0;
    shim_init();
    run();
    return 0;
}
