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
 * all of it libc pages shared with every other process; Pss ~200 kB).
 *
 * Usage (every path absolute):
 *   berth-monitor --id ID --bundle DIR --runtime PATH --runtime-root DIR
 *                 --log FILE --log-max-size BYTES --log-max-files N
 *                 --exit-file FILE --pid-file FILE --runtime-log FILE
 *                 [--stdin-fifo PATH] [--cgroup-path PATH]
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
 *   EOF (at most 5 s), then writes EXIT_FILE atomically (temp, fsync, rename, fsync dir):
 *     {"exitCode":137,"signal":9,"oomKilled":false,"finishedAt":"2026-...Z"}
 *   exitCode is 128+signal when a signal ended it, and signal is null otherwise. The exit
 *   file is written after the drain, so once it exists the log is complete. Exit status 0.
 *
 * SIGPIPE and SIGHUP are ignored; the monitor never writes to its own stdio. SIGTERM or
 * SIGKILL end it (the container keeps running, no longer logged or recorded).
 *
 * Build: cc -O2 -Wall -o dist/bin/berth-monitor src/runtime/monitor/monitor.c
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
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYNC_FD 3
#define CHUNK 16384           /* Docker's partial-line size */
#define DRAIN_MS 5000         /* how long to wait for EOF after init exited */
#define MSG_MAX 4096          /* longest error message passed on fd 3 */

static struct {
    const char *id, *bundle, *runtime, *runtime_root, *log, *exit_file, *pid_file,
        *runtime_log, *stdin_fifo, *cgroup_path;
    long long log_max_size;
    long log_max_files;
} o = { .log_max_size = -1, .log_max_files = 1 };

struct stream {
    int fd;
    const char *name;
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

static void pump(struct stream *s)
{
    ssize_t n = read(s->fd, s->buf + s->len, CHUNK - s->len);
    if (n > 0) {
        s->len += (size_t)n;
        emit_lines(s);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_stream(s);
    }
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
    int ok = write_all(fd, rec, (size_t)n) == 0 && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, o.exit_file) < 0) {
        unlink(tmp);
        return;
    }
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
        { 0, 0, 0, 0 },
    };
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
        default: return -1;
        }
    }
    const char *paths[] = { o.bundle, o.runtime_root, o.log, o.exit_file, o.pid_file, o.runtime_log };
    for (size_t k = 0; k < sizeof paths / sizeof *paths; k++)
        if (!paths[k] || paths[k][0] != '/')
            return -1;
    return optind == argc && o.id && o.runtime ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (fcntl(SYNC_FD, F_GETFD) < 0)
        return 2; /* no sync fd: not started by berthd */
    fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC);
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

    pid_t rt = fork();
    if (rt < 0)
        fail("fork");
    if (rt == 0) {
        char *args[] = { (char *)o.runtime, "--root", (char *)o.runtime_root, "--log",
                         (char *)o.runtime_log, "--log-format", "json", "create", "--bundle",
                         (char *)o.bundle, "--pid-file", (char *)o.pid_file, (char *)o.id, NULL };
        sigprocmask(SIG_SETMASK, &none, NULL); /* the mask and ignored signals survive exec */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        if (dup2(in, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(127);
        execvp(o.runtime, args);
        _exit(127);
    }
    close(in);
    close(out[1]);
    close(err[1]);
    int status;
    while (waitpid(rt, &status, 0) < 0)
        if (errno != EINTR)
            fail("wait for the runtime");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_runtime(status, err[0]);
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
    fcntl(so.fd, F_SETFL, O_NONBLOCK);
    fcntl(se.fd, F_SETFL, O_NONBLOCK);
    int exited = 0, oom = 0, init_status = 0;
    long long deadline = 0;
    char finished[40] = "";
    while (!exited || so.fd >= 0 || se.fd >= 0) {
        struct pollfd p[3] = { { sfd, POLLIN, 0 }, { so.fd, POLLIN, 0 }, { se.fd, POLLIN, 0 } };
        int timeout = -1;
        if (exited && (timeout = (int)(deadline - now_ms())) <= 0)
            break; /* something outside the pid namespace still holds a pipe */
        if (poll(p, 3, timeout) < 0) {
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
    }
    if (so.fd >= 0)
        close_stream(&so);
    if (se.fd >= 0)
        close_stream(&se);
    write_exit_file(init_status, finished, oom);
    return 0;
}
