/*
 * berth-monitor: the per-container monitor
 * ========================================
 *
 * One berth-monitor runs per container. berthd starts it detached (setsid), with stdio on
 * /dev/null and a pipe on fd 3, and it outlives berthd: it holds the container's stdout and
 * stderr and records the container's exit status, so a container keeps running and logging
 * while berthd restarts. Why our own and not conmon: it writes Docker's json-file log
 * format and our exit record directly, and its start protocol is ours. It allocates
 * nothing after start-up; its private memory is about 130 kB (VmRSS reads ~1.5 MB, nearly
 * all of it libc pages shared with every other process; Pss ~200 kB). In tty mode its
 * static queues (4 MiB for the attach client, 64 KiB of input) add up to ~4.1 MB more, paid
 * only as far as they are used.
 *
 * Usage (every path absolute):
 *   berth-monitor --id ID --bundle DIR --runtime PATH --runtime-root DIR
 *                 --log FILE --log-max-size BYTES --log-max-files N
 *                 --exit-file FILE --pid-file FILE --runtime-log FILE
 *                 [--stdin-fifo PATH] [--cgroup-path PATH] [--start] [--watch-socket PATH]
 *                 [--tty --console-socket PATH --attach-socket PATH [--tty-size ROWSxCOLS]]
 *
 * The tty flags go together (see "tty mode" below); --stdin-fifo is refused with --tty,
 * and --console-socket, --attach-socket or --tty-size without --tty is bad usage.
 *
 * Start protocol (fd 3)
 *   1. The monitor makes itself a child subreaper, makes one pipe for stdout and one for
 *      stderr, and runs
 *        RUNTIME --root RUNTIME_ROOT --log RUNTIME_LOG --log-format json \
 *                create --bundle DIR --pid-file PID_FILE ID
 *      with those pipes as stdout/stderr and stdin = /dev/null, or the stdin fifo opened
 *      for reading (berthd opens the fifo's write end before `start`; when every writer
 *      has closed it the container reads EOF). The container's init inherits these fds and
 *      is reparented to the monitor when the runtime exits.
 *   2. Success: one line {"pid":N}\n on fd 3, then fd 3 is closed; berthd runs
 *      `RUNTIME start ID`. Failure: one line {"error":"MESSAGE"}\n (the runtime's last
 *      error from RUNTIME_LOG, else its stderr) and exit status 1. Bad usage: exit 2.
 *   With --start the monitor runs `RUNTIME ... run --detach --bundle DIR --pid-file
 *   PID_FILE ID` instead of `create`: the process is already running when {"pid":N} comes
 *   (and may have exited: it stays the monitor's unreaped child until then, so the checks
 *   below still hold), and berthd runs no `start`. One runtime process less per start, for
 *   when berthd has nothing to do between create and start (no network to plug in, no
 *   stdin or attach client to connect first).
 *
 * While the container runs
 *   stdout/stderr go to LOG in Docker's json-file format, one object per line:
 *     {"log":"hi\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}
 *   Output is split at \n; a line longer than 16 KiB is written in 16 KiB pieces with no
 *   trailing \n (as Docker does), cut on a UTF-8 character boundary. Strings are escaped
 *   like Docker's: control characters, < > & and U+2028/9 as \uXXXX, invalid UTF-8 as
 *   \ufffd. Before a write, if LOG has reached BYTES (> 0) it is rotated: LOG.{N-2} ->
 *   LOG.{N-1}, ..., LOG -> LOG.1, a new LOG (N files in all; N <= 1 truncates LOG).
 *
 * Exit
 *   When the container's init (the pid in PID_FILE) exits, the monitor reaps it, reads the
 *   oom_kill counter of its memory cgroup (CGROUP_PATH is the spec's cgroupsPath, e.g.
 *   /berth-x/ID, looked for under /sys/fs/cgroup/memory (v1) and /sys/fs/cgroup (v2); a
 *   path under /sys/fs/cgroup/ is used as the directory itself), drains stdout/stderr to
 *   EOF (at most 5 s), then writes EXIT_FILE atomically (temp, rename, fsync, fsync dir):
 *     {"exitCode":137,"signal":9,"oomKilled":false,"finishedAt":"2026-...Z"}
 *   exitCode is 128+signal when a signal ended it, and signal is null otherwise. The exit
 *   file is written after the drain, so once it exists the log is complete. Exit status 0.
 *
 * tty mode (--tty; the spec's process.terminal must be true)
 *   The runtime makes the pty inside the container; the container's stdin, stdout and
 *   stderr are its slave, and the monitor holds the master for the container's whole life
 *   (it outlives berthd, as the pipes do in pipe mode).
 *   Start: before running the runtime, the monitor
 *     - listens on ATTACH (--attach-socket), replacing a stale socket there (any other kind
 *       of file there is an error), and makes ATTACH's directory its working directory;
 *     - listens on CONSOLE (--console-socket) likewise.
 *   It runs `RUNTIME ... create --bundle DIR --pid-file PID_FILE --console-socket
 *   /proc/self/fd/N/NAME ID`, where N is an inherited O_PATH descriptor of CONSOLE's
 *   directory and NAME its last component: the runtime chdirs into the bundle before it
 *   connects, and CONSOLE's full path may be longer than sun_path's 107 bytes. The
 *   runtime's stdin is /dev/null and its stdout and stderr go to one pipe (read only for
 *   an error message). While it runs, the monitor polls, accepts one connection on CONSOLE
 *   and receives the master (one message, SCM_RIGHTS with one fd; the payload, the pty's
 *   name, is ignored). When the runtime has exited, CONSOLE is unlinked; a runtime failure
 *   is reported as {"error":...} as above, and so is a runtime that exits 0 without having
 *   sent a master. The master is made O_NONBLOCK and given --tty-size (TIOCSWINSZ; rows
 *   and cols 1..10000) before {"pid":N} is written on fd 3, so when berthd reads {"pid":N}
 *   ATTACH already accepts connections (connect before `RUNTIME start` to see all output).
 *   ATTACH's path, like CONSOLE's, may be longer than sun_path: the monitor binds it through
 *   /proc/self/fd, and a client can connect to /proc/MONITOR_PID/cwd/NAME (root only).
 *
 *   Output: every byte read from the master is logged exactly as stdout is in pipe mode
 *   (stream "stdout"; a pty turns \n into \r\n, so log lines end in \r\n) and sent as is
 *   to the attach client, if one is connected.
 *
 *   Attach protocol (ATTACH: a unix stream socket; at most one client at a time)
 *     - A new connection replaces the current client: the old one is closed. A client
 *       sees only output produced after it connected (no replay: read the log for that).
 *     - monitor -> client: the raw pty output bytes, unframed. Sends never block: output
 *       the client has not taken is queued, and when more than 4 MiB (4194304 bytes) is
 *       queued the client is dropped (closed, the queue discarded). The container never
 *       waits for a client. A client that is dropped sees EOF, as when the container exits.
 *     - client -> monitor: a stream of frames, each beginning with a type byte:
 *         0x00 LEN_HI LEN_LO DATA[LEN]   input: DATA is written to the pty master
 *                                        (LEN 0..65535, big-endian; LEN 0 is allowed)
 *         0x01 R_HI R_LO C_HI C_LO       resize: TIOCSWINSZ rows R, cols C (big-endian);
 *                                        ignored if either is 0 or above 10000
 *       Frames may be split across reads and packed several to a read. Any other type byte
 *       is malformed: the client is closed. Input is written non-blocking; at most 64 KiB
 *       (65536 bytes) wait for the pty, and input beyond that is dropped, not refused. Input
 *       the pty cannot take any more (EIO: no process holds the slave) is discarded.
 *     - Client EOF or an error: the monitor closes the client; the container keeps running
 *       and a new client may connect.
 *   If reading the master fails (EIO: no process holds the slave) while init still runs,
 *   the monitor stops reading it but keeps it open (closing it would hang the pty up).
 *
 *   Exit: when init exits the monitor stops accepting on ATTACH, reads the master until
 *   EIO/EOF and sends the rest to the client (together at most 5 s), then closes the client
 *   and the master, unlinks ATTACH and writes EXIT_FILE as above. So a client sees EOF
 *   before the exit file appears; once EXIT_FILE exists the log is complete.
 *
 * Watch socket (--watch-socket PATH, a unix stream socket; long paths as for ATTACH)
 *   How berthd learns at once that the monitor is gone, whoever started it (a berthd that
 *   restarted adopts monitors it is not the parent of). The monitor listens on PATH before
 *   it runs the runtime and accepts and holds every connection (at most 4 at a time; more
 *   are closed at once); it never writes to them, and what a client writes is discarded.
 *   A connection ends when the client closes it or the monitor's process ends: after
 *   EXIT_FILE was written when the container exited, without one when the monitor was
 *   killed. So EOF on a connection means "look now": the exit file, else a dead monitor.
 *   PATH is unlinked before EXIT_FILE is written. Without --tty the monitor's working
 *   directory is PATH's directory, so a client can connect to /proc/MONITOR_PID/cwd/NAME
 *   (berthd keeps PATH in the same directory as ATTACH, which is the cwd with --tty).
 *
 * File descriptors: the monitor closes every descriptor above 3 it inherited, so that a
 *   descriptor its caller left open (not close-on-exec) never reaches the runtime or the
 *   container, and the monitor never holds the caller's pipes open.
 *
 * SIGPIPE and SIGHUP are ignored; the monitor never writes to its own stdio. SIGTERM or
 * SIGKILL end it (the container keeps running, no longer logged or recorded).
 *
 * Build: cc -O2 -Wall -Werror -o dist/bin/berth-monitor src/runtime/monitor/monitor.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYNC_FD 3
#define CHUNK 16384           /* Docker's partial-line size */
#define DRAIN_MS 5000         /* how long to wait for EOF after init exited */
#define MSG_MAX 4096          /* longest error message passed on fd 3 */
#define CLIENT_OUT_MAX (4 << 20) /* tty: output queued for the attach client before it is dropped */
#define INPUT_MAX 65536       /* tty: input queued for the pty; more is dropped */
#define WATCH_MAX 4           /* watch connections held at once; more are closed at once */

static struct {
    const char *id, *bundle, *runtime, *runtime_root, *log, *exit_file, *pid_file,
        *runtime_log, *stdin_fifo, *cgroup_path, *console_socket, *attach_socket, *watch_socket;
    long long log_max_size;
    long log_max_files;
    int tty;
    int start; /* --start: `run --detach` instead of `create` */
    unsigned short rows, cols; /* --tty-size; 0: not given */
} o = { .log_max_size = -1, .log_max_files = 1 };

struct stream {
    int fd;
    const char *name;
    int tee;        /* tty: bytes read are also sent to the attach client */
    size_t len;
    unsigned char buf[CHUNK];
};

static int log_fd = -1;
static long long log_size;
/* One log entry: the JSON envelope plus up to 6 output bytes per input byte. */
static char entry[CHUNK * 6 + 128];

/* ---- small helpers ---------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void now_rfc3339(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 if it is invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2; cp = c & 0x1f; min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3; cp = c & 0x0f; min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4; cp = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* JSON-escape s[0..n) into out (room for 6*n bytes), as Docker's json-file does. */
static size_t json_escape(char *out, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            if (c == '"' || c == '\\') {
                *p++ = '\\'; *p++ = (char)c;
            } else if (c == '\n') {
                *p++ = '\\'; *p++ = 'n';
            } else if (c == '\r') {
                *p++ = '\\'; *p++ = 'r';
            } else if (c == '\t') {
                *p++ = '\\'; *p++ = 't';
            } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                memcpy(p, "\\u00", 4);
                p[4] = hex[c >> 4];
                p[5] = hex[c & 15];
                p += 6;
            } else {
                *p++ = (char)c;
            }
            continue;
        }
        size_t len = utf8_len(s + i, n - i);
        if (len == 0) {
            memcpy(p, "\\ufffd", 6);
            p += 6;
            i++;
        } else if (len == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] | 1) == 0xa9) {
            memcpy(p, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6); /* JS line separators */
            p += 6;
            i += 3;
        } else {
            memcpy(p, s + i, len);
            p += len;
            i += len;
        }
    }
    return (size_t)(p - out);
}

/* Report a start failure on fd 3 (msg is already JSON-escaped) and exit 1. */
static void fail_json(const char *msg)
{
    char line[MSG_MAX + 32];
    int n = snprintf(line, sizeof line, "{\"error\":\"%s\"}\n", msg);
    if (n > 0)
        write_all(SYNC_FD, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    _exit(1);
}

static void fail(const char *what)
{
    char raw[MSG_MAX / 6 - 8], esc[MSG_MAX];
    snprintf(raw, sizeof raw, "berth-monitor: %s: %s", what, strerror(errno));
    esc[json_escape(esc, (const unsigned char *)raw, strlen(raw))] = 0;
    fail_json(esc);
}

/* ---- the log file ----------------------------------------------------------------- */

static void open_log(int truncate)
{
    struct stat st;
    log_fd = open(o.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0640);
    log_size = log_fd >= 0 && fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

static void rotate(void)
{
    char from[PATH_MAX], to[PATH_MAX];
    close(log_fd);
    if (o.log_max_files <= 1) {
        open_log(1);
        return;
    }
    for (long i = o.log_max_files - 1; i > 1; i--) { /* renaming over the oldest drops it */
        snprintf(from, sizeof from, "%s.%ld", o.log, i - 1);
        snprintf(to, sizeof to, "%s.%ld", o.log, i);
        rename(from, to);
    }
    snprintf(to, sizeof to, "%s.1", o.log);
    rename(o.log, to);
    open_log(0);
}

static void write_entry(const struct stream *s, const unsigned char *data, size_t n)
{
    char ts[40];
    char *p = entry;
    now_rfc3339(ts);
    p += sprintf(p, "{\"log\":\"");
    p += json_escape(p, data, n);
    p += sprintf(p, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", s->name, ts);
    if (o.log_max_size > 0 && log_size >= o.log_max_size && log_fd >= 0)
        rotate();
    if (log_fd < 0) /* the log dir is gone (container removed): keep draining anyway */
        return;
    if (write_all(log_fd, entry, (size_t)(p - entry)) == 0)
        log_size += p - entry;
}

/* Where to cut a full buffer so that no UTF-8 character is split (len if none is). */
static size_t utf8_cut(const unsigned char *b, size_t len)
{
    for (size_t k = 1; k <= 3 && k < len; k++) {
        unsigned c = b[len - k];
        if ((c & 0xc0) == 0x80)
            continue;                   /* continuation byte: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? len - k : len;
    }
    return len;
}

/* Write every complete line in s->buf, and a 16 KiB piece when the buffer is full. */
static void emit_lines(struct stream *s)
{
    size_t start = 0;
    unsigned char *nl;
    while ((nl = memchr(s->buf + start, '\n', s->len - start)) != NULL) {
        size_t l = (size_t)(nl - (s->buf + start)) + 1;
        write_entry(s, s->buf + start, l);
        start += l;
    }
    if (start == 0 && s->len == CHUNK)
        write_entry(s, s->buf, start = utf8_cut(s->buf, s->len));
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

static void close_stream(struct stream *s)
{
    if (s->len > 0)
        write_entry(s, s->buf, s->len);
    s->len = 0;
    close(s->fd);
    s->fd = -1;
}

static void client_send(const unsigned char *d, size_t n);

static void pump(struct stream *s)
{
    ssize_t n = read(s->fd, s->buf + s->len, CHUNK - s->len);
    if (n > 0) {
        if (s->tee)
            client_send(s->buf + s->len, (size_t)n);
        s->len += (size_t)n;
        emit_lines(s);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_stream(s);
    }
}

/* ---- tty mode: the console socket, the pty master and the attach client ------------- */

static int master_fd = -1;    /* the pty master: input and resizes (reads use a dup) */
static int attach_lfd = -1;   /* the attach socket, listening */
static int attach_dirfd = -1; /* the attach socket's directory (O_PATH) */
static const char *attach_name;
static int client = -1;       /* the one attach client, or -1 */
static unsigned char client_out[CLIENT_OUT_MAX]; /* ring: output not yet sent to the client */
static size_t out_off, out_len;
static unsigned char input[INPUT_MAX];           /* ring: input not yet written to the pty */
static size_t in_off, in_len;
static int fr_type = -1;      /* the frame being read: -1 none, 0 input, 1 resize */
static int fr_have;           /* header bytes read so far */
static unsigned char fr_hdr[4];
static size_t fr_data;        /* input bytes still to come in the current frame */

/*
 * Split an absolute path into an O_PATH descriptor of its directory and its last
 * component, and build "/proc/self/fd/DIRFD/NAME" (short whatever the directory's length)
 * into sa. Returns the directory fd, or -1 with errno set.
 */
static int unix_addr(const char *path, const char **name, struct sockaddr_un *sa)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || !slash[1] || (size_t)(slash - path) >= sizeof dir) {
        errno = EINVAL;
        return -1;
    }
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
    int dfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dfd, slash + 1);
    if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
        close(dfd);
        errno = ENAMETOOLONG;
        return -1;
    }
    *name = slash + 1;
    return dfd;
}

/* A non-blocking listening unix stream socket at path (a stale socket there is replaced). */
static int listen_unix(const char *path, int *dirfd, const char **name, const char *what)
{
    struct sockaddr_un sa;
    struct stat st;
    int dfd = unix_addr(path, name, &sa);
    if (dfd < 0)
        fail(what);
    if (fstatat(dfd, *name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            errno = EEXIST;
            fail(what);
        }
        unlinkat(dfd, *name, 0);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
        fail(what);
    *dirfd = dfd;
    return fd;
}

static void set_winsize(unsigned rows, unsigned cols)
{
    if (rows == 0 || rows > 10000 || cols == 0 || cols > 10000)
        return;
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    ioctl(master_fd, TIOCSWINSZ, &ws);
}

static void drop_client(void)
{
    if (client >= 0)
        close(client);
    client = -1;
    out_off = out_len = 0;
    fr_type = -1;
    fr_data = 0;
}

/* Send as much queued output as the client takes now; drop it on an error. */
static void client_flush(void)
{
    while (client >= 0 && out_len > 0) {
        size_t seg = CLIENT_OUT_MAX - out_off < out_len ? CLIENT_OUT_MAX - out_off : out_len;
        ssize_t w = send(client, client_out + out_off, seg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR)
                drop_client();
            return;
        }
        out_off = (out_off + (size_t)w) % CLIENT_OUT_MAX;
        out_len -= (size_t)w;
    }
    if (out_len == 0)
        out_off = 0;
}

/* Output for the client: sent now if it can take it, else queued; a client with more than
 * CLIENT_OUT_MAX queued is dropped, so a slow client never stalls the container. */
static void client_send(const unsigned char *d, size_t n)
{
    if (client < 0)
        return;
    if (out_len == 0) {
        ssize_t w = send(client, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            drop_client();
            return;
        }
        if (w > 0) {
            d += w;
            n -= (size_t)w;
        }
    }
    if (n == 0)
        return;
    if (out_len + n > CLIENT_OUT_MAX) {
        drop_client();
        return;
    }
    size_t end = (out_off + out_len) % CLIENT_OUT_MAX;
    size_t first = CLIENT_OUT_MAX - end < n ? CLIENT_OUT_MAX - end : n;
    memcpy(client_out + end, d, first);
    memcpy(client_out, d + first, n - first);
    out_len += n;
}

/* Write queued input to the pty (non-blocking); on an error other than EAGAIN it is dropped. */
static void input_flush(void)
{
    while (in_len > 0) {
        size_t seg = INPUT_MAX - in_off < in_len ? INPUT_MAX - in_off : in_len;
        ssize_t w = write(master_fd, input + in_off, seg);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                in_len = 0;
            break;
        }
        in_off = (in_off + (size_t)w) % INPUT_MAX;
        in_len -= (size_t)w;
    }
    if (in_len == 0)
        in_off = 0;
}

static void input_add(const unsigned char *d, size_t n)
{
    if (n > INPUT_MAX - in_len)
        n = INPUT_MAX - in_len; /* the rest is dropped */
    size_t end = (in_off + in_len) % INPUT_MAX;
    size_t first = INPUT_MAX - end < n ? INPUT_MAX - end : n;
    memcpy(input + end, d, first);
    memcpy(input, d + first, n - first);
    in_len += n;
}

/* Read the client's frames: 0x00 LEN16 DATA (input), 0x01 ROWS16 COLS16 (resize). */
static void client_read(void)
{
    unsigned char b[4096];
    ssize_t n = read(client, b, sizeof b);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* EOF or an error: the container keeps running */
        drop_client();
        return;
    }
    for (size_t i = 0; i < (size_t)n;) {
        if (fr_data > 0) {
            size_t k = fr_data < (size_t)n - i ? fr_data : (size_t)n - i;
            input_add(b + i, k);
            i += k;
            fr_data -= k;
        } else if (fr_type < 0) {
            fr_type = b[i++];
            fr_have = 0;
            if (fr_type > 1) { /* malformed */
                drop_client();
                return;
            }
        } else {
            fr_hdr[fr_have++] = b[i++];
            if (fr_type == 0 && fr_have == 2) {
                fr_data = (size_t)fr_hdr[0] << 8 | fr_hdr[1];
                fr_type = -1;
            } else if (fr_type == 1 && fr_have == 4) {
                set_winsize((unsigned)fr_hdr[0] << 8 | fr_hdr[1], (unsigned)fr_hdr[2] << 8 | fr_hdr[3]);
                fr_type = -1;
            }
        }
    }
    input_flush();
}

/* A new attach client replaces the old one. */
static void client_accept(void)
{
    int fd = accept4(attach_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    drop_client();
    client = fd;
}

/* ---- the watch socket --------------------------------------------------------------- */

static int watch_lfd = -1, watch_dirfd = -1;
static const char *watch_name;
static int watchers[WATCH_MAX] = { -1, -1, -1, -1 };

/* Hold every new watch connection there is room for; close the rest. */
static void watch_accept(void)
{
    int fd;
    while ((fd = accept4(watch_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        int k = 0;
        while (k < WATCH_MAX && watchers[k] >= 0)
            k++;
        if (k < WATCH_MAX)
            watchers[k] = fd;
        else
            close(fd);
    }
}

/* A watcher wrote (discarded) or hung up (closed). */
static void watch_read(int k)
{
    char buf[256];
    ssize_t n = read(watchers[k], buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close(watchers[k]);
        watchers[k] = -1;
    }
}

/* The pty master from one SCM_RIGHTS message on conn, or -1 (errno EAGAIN: not yet). */
static int recv_master(int conn)
{
    char name[4096];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { name, sizeof name };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    ssize_t n = recvmsg(conn, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (n == 0 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(sizeof(int))) {
        errno = EPROTO;
        return -2;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/*
 * While `runtime create` (pid rt) runs: accept its connection on the console socket and
 * receive the pty master. Returns the master (or -1 if none came) once the runtime has
 * exited, with its wait status in *status.
 */
static int await_console(pid_t rt, int lfd, int sfd, int *status)
{
    int conn = -1, master = -1, reaped = 0;
    while (!reaped) {
        struct pollfd p[3] = { { sfd, POLLIN, 0 }, { master < 0 && conn == -1 ? lfd : -1, POLLIN, 0 },
                               { master < 0 ? conn : -1, POLLIN, 0 } };
        if (poll(p, 3, -1) < 0) {
            if (errno != EINTR)
                usleep(100000);
            continue;
        }
        if (p[1].revents)
            conn = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (p[2].revents) {
            int fd = recv_master(conn);
            if (fd >= 0 || fd == -2 || (errno != EAGAIN && errno != EINTR)) {
                master = fd >= 0 ? fd : -1;
                close(conn);
                conn = -2; /* done with the console socket: never accept again */
            }
        }
        if (p[0].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si)
                ;
            if (waitpid(rt, status, WNOHANG) == rt)
                reaped = 1;
        }
    }
    /* The runtime has exited: a message it sent may still be queued, not yet polled. */
    if (master < 0 && conn == -1)
        conn = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (master < 0 && conn >= 0) {
        int fd = recv_master(conn);
        master = fd >= 0 ? fd : -1;
    }
    if (conn >= 0)
        close(conn);
    return master;
}

/* ---- start-up ---------------------------------------------------------------------- */

/* Copy the last error "msg" of the runtime's JSON log into out (still JSON-escaped). */
static int runtime_error(char *out, size_t cap)
{
    static char buf[65536];
    int fd = open(o.runtime_log, O_RDONLY | O_CLOEXEC), found = 0;
    if (fd < 0)
        return 0;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (!strstr(line, "\"level\":\"error\"") && !strstr(line, "\"level\":\"fatal\""))
            continue;
        char *m = strstr(line, "\"msg\":\"");
        if (!m)
            continue;
        size_t k = 0;
        for (m += 7; *m && *m != '"';) {
            size_t len = *m != '\\' ? 1 : m[1] == 'u' ? 6 : 2; /* escapes are copied whole, */
            if (k + len >= cap || strnlen(m, len) < len)          /* so the JSON stays valid */
                break;
            memcpy(out + k, m, len);
            k += len;
            m += len;
        }
        out[k] = 0;
        found = 1;
    }
    return found;
}

static void fail_runtime(int status, int err_fd)
{
    char msg[MSG_MAX];
    if (runtime_error(msg, sizeof msg))
        fail_json(msg);
    unsigned char raw[MSG_MAX / 6 - 8];
    fcntl(err_fd, F_SETFL, O_NONBLOCK);
    ssize_t n = read(err_fd, raw, sizeof raw);
    while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == ' '))
        n--;
    if (n > 0) {
        msg[json_escape(msg, raw, (size_t)n)] = 0;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        snprintf(msg, sizeof msg, "cannot run the OCI runtime %s", o.runtime);
    } else {
        snprintf(msg, sizeof msg, "the OCI runtime failed (status %d) and logged no error",
                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    fail_json(msg);
}

/* Read a small file into buf (NUL-terminated); false when it cannot be read or is empty. */
static int read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return 1;
}

static pid_t read_pid_file(void)
{
    char buf[32];
    if (!read_small(o.pid_file, buf, sizeof buf))
        return -1;
    long pid = strtol(buf, NULL, 10);
    return pid > 0 && pid <= INT_MAX ? (pid_t)pid : -1;
}

/* The parent pid of pid, from /proc/PID/stat (the field after the ")" of the name). */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!read_small(path, buf, sizeof buf))
        return -1;
    char *p = strrchr(buf, ')');
    int ppid;
    return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

/* ---- exit ------------------------------------------------------------------------- */

static long long read_oom_kill(const char *file)
{
    char buf[1024];
    if (!read_small(file, buf, sizeof buf))
        return -1;
    for (char *l = buf; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, "oom_kill ", 9) == 0)
            return strtoll(l + 9, NULL, 10);
    return -1;
}

/* Whether the kernel OOM-killed a process of the container's memory cgroup. */
static int oom_killed(void)
{
    char f[PATH_MAX];
    const char *cg = o.cgroup_path;
    long long k;
    if (!cg)
        return 0;
    if (strncmp(cg, "/sys/fs/cgroup/", 15) == 0) {
        snprintf(f, sizeof f, "%s/memory.oom_control", cg);
        if ((k = read_oom_kill(f)) >= 0)
            return k > 0;
        snprintf(f, sizeof f, "%s/memory.events", cg);
        return read_oom_kill(f) > 0;
    }
    snprintf(f, sizeof f, "/sys/fs/cgroup/memory%s/memory.oom_control", cg);
    if ((k = read_oom_kill(f)) >= 0)
        return k > 0;
    snprintf(f, sizeof f, "/sys/fs/cgroup%s/memory.events", cg);
    return read_oom_kill(f) > 0;
}

static void write_exit_file(int status, const char *finished, int oom)
{
    char rec[256], tmp[PATH_MAX], sig[16] = "null", dir[PATH_MAX];
    int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        snprintf(sig, sizeof sig, "%d", WTERMSIG(status));
    int n = snprintf(rec, sizeof rec,
                     "{\"exitCode\":%d,\"signal\":%s,\"oomKilled\":%s,\"finishedAt\":\"%s\"}\n",
                     code, sig, oom ? "true" : "false", finished);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", o.exit_file, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    /* Renamed into place before it is synced: berthd waits for this name, and the two
     * fsyncs (~12 ms on a busy disk) need not delay it. Readers see it whole either way;
     * only a power loss in between could leave it empty, which berthd reads as an unknown
     * exit, as it does a missing one. */
    if (write_all(fd, rec, (size_t)n) < 0 || rename(tmp, o.exit_file) < 0) {
        close(fd);
        unlink(tmp);
        return;
    }
    fsync(fd);
    close(fd);
    snprintf(dir, sizeof dir, "%s", o.exit_file);
    *strrchr(dir, '/') = 0; /* the path is absolute: there is a '/' */
    if ((fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* ---- main ------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        { "id", required_argument, 0, 'i' },          { "bundle", required_argument, 0, 'b' },
        { "runtime", required_argument, 0, 'r' },     { "runtime-root", required_argument, 0, 'R' },
        { "log", required_argument, 0, 'l' },         { "log-max-size", required_argument, 0, 's' },
        { "log-max-files", required_argument, 0, 'n' }, { "exit-file", required_argument, 0, 'e' },
        { "pid-file", required_argument, 0, 'p' },    { "runtime-log", required_argument, 0, 'L' },
        { "stdin-fifo", required_argument, 0, 'f' },  { "cgroup-path", required_argument, 0, 'c' },
        { "tty", no_argument, 0, 't' },               { "console-socket", required_argument, 0, 'C' },
        { "attach-socket", required_argument, 0, 'a' }, { "tty-size", required_argument, 0, 'z' },
        { "start", no_argument, 0, 'S' },             { "watch-socket", required_argument, 0, 'w' },
        { 0, 0, 0, 0 },
    };
    unsigned rows = 0, cols = 0;
    int sized = 0;
    char x;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': o.id = optarg; break;
        case 'b': o.bundle = optarg; break;
        case 'r': o.runtime = optarg; break;
        case 'R': o.runtime_root = optarg; break;
        case 'l': o.log = optarg; break;
        case 's': o.log_max_size = strtoll(optarg, NULL, 10); break;
        case 'n': o.log_max_files = strtol(optarg, NULL, 10); break;
        case 'e': o.exit_file = optarg; break;
        case 'p': o.pid_file = optarg; break;
        case 'L': o.runtime_log = optarg; break;
        case 'f': o.stdin_fifo = optarg; break;
        case 'c': o.cgroup_path = optarg; break;
        case 't': o.tty = 1; break;
        case 'S': o.start = 1; break;
        case 'w': o.watch_socket = optarg; break;
        case 'C': o.console_socket = optarg; break;
        case 'a': o.attach_socket = optarg; break;
        case 'z':
            if (sscanf(optarg, "%u%c%u%c", &rows, &x, &cols, &x) != 3 || x != 'x' || rows == 0 ||
                rows > 10000 || cols == 0 || cols > 10000)
                return -1;
            sized = 1;
            break;
        default: return -1;
        }
    }
    const char *paths[] = { o.bundle, o.runtime_root, o.log, o.exit_file, o.pid_file, o.runtime_log };
    for (size_t k = 0; k < sizeof paths / sizeof *paths; k++)
        if (!paths[k] || paths[k][0] != '/')
            return -1;
    if (o.watch_socket && o.watch_socket[0] != '/')
        return -1;
    if (o.tty) { /* tty mode: both sockets, absolute; stdin comes from the attach client */
        if (!o.console_socket || o.console_socket[0] != '/' || !o.attach_socket ||
            o.attach_socket[0] != '/' || o.stdin_fifo)
            return -1;
        o.rows = (unsigned short)rows;
        o.cols = (unsigned short)cols;
    } else if (o.console_socket || o.attach_socket || sized) {
        return -1; /* tty flags without --tty */
    }
    return optind == argc && o.id && o.runtime ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (fcntl(SYNC_FD, F_GETFD) < 0)
        return 2; /* no sync fd: not started by berthd */
    fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC);
    /* Whatever else the caller left open is not ours to hold or pass on. */
    if (close_range(SYNC_FD + 1, ~0U, 0) < 0)
        for (int fd = SYNC_FD + 1; fd < 4096; fd++)
            close(fd);
    for (int fd; (fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2;)
        ; /* fds 0-2 must be taken, so our pipes never land there */
    if (parse_args(argc, argv) < 0) {
        errno = EINVAL;
        fail("bad arguments (every path must be absolute; see the comment in monitor.c)");
    }
    signal(SIGPIPE, SIG_IGN); /* berthd may be gone: never die of a closed pipe */
    signal(SIGHUP, SIG_IGN);
    if (chdir("/") < 0) /* do not pin berthd's working directory */
        fail("chdir /");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        fail("PR_SET_CHILD_SUBREAPER");

    sigset_t chld, none;
    sigemptyset(&chld);
    sigemptyset(&none);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    int out[2], err[2];
    if (sfd < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        fail("signalfd/pipe");
    int in = o.stdin_fifo ? open(o.stdin_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                          : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0 || (o.stdin_fifo && fcntl(in, F_SETFL, 0) < 0)) /* blocking reads for the container */
        fail(o.stdin_fifo ? "open the stdin fifo" : "open /dev/null");
    open_log(0);
    if (log_fd < 0)
        fail("open the log file");

    /* tty mode: the attach socket first (the monitor's cwd becomes its directory), then the
     * console socket, which the runtime reaches as /proc/self/fd/DIRFD/NAME (it chdirs into
     * the bundle before connecting, and a full path may be too long for sun_path). */
    int console_lfd = -1, console_dirfd = -1;
    const char *console_name = NULL;
    char console_arg[sizeof ((struct sockaddr_un *)0)->sun_path] = "";
    if (o.watch_socket) {
        watch_lfd = listen_unix(o.watch_socket, &watch_dirfd, &watch_name, "listen on the watch socket");
        if (!o.tty && fchdir(watch_dirfd) < 0)
            fail("chdir to the watch socket's directory");
    }
    if (o.tty) {
        attach_lfd = listen_unix(o.attach_socket, &attach_dirfd, &attach_name, "listen on the attach socket");
        if (fchdir(attach_dirfd) < 0)
            fail("chdir to the attach socket's directory");
        console_lfd = listen_unix(o.console_socket, &console_dirfd, &console_name, "listen on the console socket");
        snprintf(console_arg, sizeof console_arg, "/proc/self/fd/%d/%s", console_dirfd, console_name);
    }

    pid_t rt = fork();
    if (rt < 0)
        fail("fork");
    if (rt == 0) {
        char *args[16];
        int k = 0;
        args[k++] = (char *)o.runtime;
        args[k++] = "--root";
        args[k++] = (char *)o.runtime_root;
        args[k++] = "--log";
        args[k++] = (char *)o.runtime_log;
        args[k++] = "--log-format";
        args[k++] = "json";
        if (o.start) {
            args[k++] = "run";
            args[k++] = "--detach";
        } else {
            args[k++] = "create";
        }
        args[k++] = "--bundle";
        args[k++] = (char *)o.bundle;
        args[k++] = "--pid-file";
        args[k++] = (char *)o.pid_file;
        if (o.tty) { /* ... --console-socket /proc/self/fd/DIRFD/NAME ID */
            args[k++] = "--console-socket";
            args[k++] = console_arg;
            if (fcntl(console_dirfd, F_SETFD, 0) < 0) /* the runtime inherits the directory fd */
                _exit(127);
        }
        args[k++] = (char *)o.id;
        args[k] = NULL;
        sigprocmask(SIG_SETMASK, &none, NULL); /* the mask and ignored signals survive exec */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        /* tty mode: the runtime's stdout goes to the stderr pipe (error capture); the
         * container's stdio is the pty, made inside the container by the runtime. */
        if (dup2(in, 0) < 0 || dup2(o.tty ? err[1] : out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(127);
        execvp(o.runtime, args);
        _exit(127);
    }
    close(in);
    close(out[1]);
    close(err[1]);
    int status;
    if (o.tty) {
        master_fd = await_console(rt, console_lfd, sfd, &status);
        unlinkat(console_dirfd, console_name, 0);
        close(console_lfd);
        close(console_dirfd);
    } else {
        while (waitpid(rt, &status, 0) < 0)
            if (errno != EINTR)
                fail("wait for the runtime");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_runtime(status, err[0]);
    if (o.tty) {
        if (master_fd < 0) {
            errno = EPROTO;
            fail("the runtime sent no pty master on the console socket");
        }
        fcntl(master_fd, F_SETFL, O_NONBLOCK);
        set_winsize(o.rows, o.cols);
    }
    pid_t init = read_pid_file();
    if (init < 0)
        fail("read the runtime's pid file");
    if (parent_of(init) != getpid()) {
        errno = ECHILD;
        fail("the container's init is not the monitor's child (does the runtime daemonize?)");
    }
    char line[32];
    int n = snprintf(line, sizeof line, "{\"pid\":%d}\n", (int)init);
    write_all(SYNC_FD, line, (size_t)n); /* if berthd is gone, carry on: it reconciles later */
    close(SYNC_FD);

    static struct stream so, se;
    so.fd = out[0], so.name = "stdout";
    se.fd = err[0], se.name = "stderr";
    if (o.tty) {
        /* The pty is the container's stdout (and stderr). Reads use a dup of the master, so
         * that EIO (no process holds the pty's other end) stops the reading while the master
         * itself stays open: closing it would hang up the container's terminal. */
        close(out[0]);
        close(err[0]); /* the runtime has exited: nothing else writes there */
        se.fd = -1;
        so.fd = fcntl(master_fd, F_DUPFD_CLOEXEC, 3);
        so.tee = 1;
        if (so.fd < 0)
            fail("dup the pty master");
    }
    fcntl(so.fd, F_SETFL, O_NONBLOCK);
    if (se.fd >= 0)
        fcntl(se.fd, F_SETFL, O_NONBLOCK);
    int exited = 0, oom = 0, init_status = 0;
    long long deadline = 0;
    char finished[40] = "";
    /* (tty mode: also until the client took the output queued for it, within the deadline) */
    while (!exited || so.fd >= 0 || se.fd >= 0 || (client >= 0 && out_len > 0)) {
        struct pollfd p[7 + WATCH_MAX] = { { sfd, POLLIN, 0 }, { so.fd, POLLIN, 0 }, { se.fd, POLLIN, 0 },
                               { in_len > 0 ? master_fd : -1, POLLOUT, 0 },
                               { exited ? -1 : attach_lfd, POLLIN, 0 },
                               { client, (short)(POLLIN | (out_len > 0 ? POLLOUT : 0)), 0 },
                               { watch_lfd, POLLIN, 0 } };
        for (int k = 0; k < WATCH_MAX; k++)
            p[7 + k] = (struct pollfd){ watchers[k], POLLIN, 0 };
        int timeout = -1;
        if (exited && (timeout = (int)(deadline - now_ms())) <= 0)
            break; /* something outside the pid namespace still holds a pipe */
        if (poll(p, 7 + WATCH_MAX, timeout) < 0) {
            if (errno != EINTR)
                usleep(100000); /* ENOMEM: try again shortly */
            continue;
        }
        if (p[0].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si)
                ;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid != init || exited)
                    continue; /* an orphan we adopted as subreaper */
                exited = 1;
                init_status = status;
                now_rfc3339(finished);
                oom = oom_killed(); /* before berthd can delete the cgroup */
                deadline = now_ms() + DRAIN_MS;
            }
        }
        if (p[1].revents)
            pump(&so);
        if (p[2].revents)
            pump(&se);
        if (p[3].revents)
            input_flush();
        if (p[4].revents)
            client_accept();
        if (p[5].revents & POLLOUT)
            client_flush();
        if (client >= 0 && p[5].revents & (POLLIN | POLLHUP | POLLERR))
            client_read();
        if (p[6].revents)
            watch_accept();
        for (int k = 0; k < WATCH_MAX; k++)
            if (watchers[k] >= 0 && p[7 + k].revents)
                watch_read(k);
    }
    if (so.fd >= 0)
        close_stream(&so);
    if (se.fd >= 0)
        close_stream(&se);
    if (o.tty) {
        drop_client();
        close(attach_lfd);
        unlinkat(attach_dirfd, attach_name, 0);
        close(master_fd);
    }
    if (watch_lfd >= 0) { /* its connections end when the process does, after the exit file */
        close(watch_lfd);
        unlinkat(watch_dirfd, watch_name, 0);
    }
    write_exit_file(init_status, finished, oom);
    return 0;
}
