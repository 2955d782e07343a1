/* worker/e2b/e2b_fs.c: envd's filesystem service (filesystem.Filesystem methods)
 * on a sandbox's file system interface (sandbox_fs.h): Stat, MakeDir,
 * Move, ListDir (with depth), Remove, WatchDir (server stream) and the
 * polled watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher), with
 * envd's error codes. Every path resolves inside the sandbox as the
 * requesting user (the interface's promise), so nothing here checks paths
 * for safety; it only expands them as envd does ("~", relative). */
#include "e2b_server.h"
#include "e2b_connect.h"
#include "e2b_registry.h"
#include "lazy_mhd.h"
#include "sandbox_fs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define E2B_WATCH_EVENTS_MAX 10000       /* kept per watcher between polls */
#define E2B_WATCHERS_MAX 8               /* polled ones, per sandbox */
#define E2B_LIST_MAX_ENTRIES 100000
#define E2B_LIST_MAX_BYTES (32u << 20)   /* of the answer, about: see e2b_fs_list_cb */

struct e2b_watcher {
    char id[40];
    uint32_t uid;
    struct sf_fs_watch *w;
    json_t *events;                      /* FilesystemEvent array not yet fetched */
    struct e2b_watcher *next;
};

/* ---- EntryInfo -------------------------------------------------------------- */

static const char *e2b_owner(uint32_t id, char *buf, size_t size)
{
    if (id == 0) return "root";
    if (id == 1000) return "user";
    snprintf(buf, size, "%u", id);
    return buf;
}

/* Go's FileMode.String(): "drwxr-xr-x", "-rw-r--r--", "Lrwxrwxrwx". */
static void e2b_perm_string(uint32_t mode, char out[11])
{
    static const char rwx[] = "rwxrwxrwx";
    out[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'L' : S_ISFIFO(mode) ? 'p'
           : S_ISSOCK(mode) ? 'S' : S_ISCHR(mode) ? 'c' : S_ISBLK(mode) ? 'D' : '-';
    for (int i = 0; i < 9; i++) out[i + 1] = mode & (1u << (8 - i)) ? rwx[i] : '-';
    out[10] = '\0';
}

static json_t *e2b_entry_json(const struct sf_fs_entry *e)
{
    static const char *const types[] = { "FILE_TYPE_UNSPECIFIED", "FILE_TYPE_FILE",
                                         "FILE_TYPE_DIRECTORY", "FILE_TYPE_SYMLINK" };
    char perm[11], size[32], ts[64], ob[16], gb[16];
    struct tm tm;
    time_t t = (time_t)e->mtime_s;
    gmtime_r(&t, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    if (e->mtime_ns) snprintf(ts + n, sizeof(ts) - n, ".%09dZ", (int)e->mtime_ns);
    else snprintf(ts + n, sizeof(ts) - n, "Z");
    e2b_perm_string(e->mode, perm);
    snprintf(size, sizeof(size), "%lld", (long long)e->size);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s}", "name", e->name,
                          "type", types[e->type <= SF_FS_SYMLINK ? e->type : 0], "path", e->path,
                          "size", size, "mode", (int)(e->mode & 07777), "permissions", perm,
                          "owner", e2b_owner(e->uid, ob, sizeof(ob)),
                          "group", e2b_owner(e->gid, gb, sizeof(gb)), "modifiedTime", ts);
    if (e->symlink_target) json_object_set_new(j, "symlinkTarget", json_string(e->symlink_target));
    return j;
}

/* ---- helpers ---------------------------------------------------------------- */

static const struct sf_fs_ops *e2b_fs_ops(struct e2b_sbx *s)
{
    return sf_sandbox_fs(s->sb);
}

/* envd's code and a message for an errno of the file system interface. */
static int e2b_fs_error(struct e2b_req *rq, int rc, const char *what, const char *path)
{
    switch (-rc) {
    case ENOENT: return e2b_reply_connect_error(rq, "not_found", "%s: path '%s' not found", what, path);
    case EEXIST: return e2b_reply_connect_error(rq, "already_exists", "directory already exists: %s", path);
    case ENOTDIR: return e2b_reply_connect_error(rq, "invalid_argument", "path is not a directory: %s", path);
    case EISDIR: return e2b_reply_connect_error(rq, "invalid_argument", "path is a directory: %s", path);
    case EACCES: case EPERM: case EROFS:
        return e2b_reply_connect_error(rq, "permission_denied", "%s %s: %s", what, path, strerror(-rc));
    case ELOOP:
        return e2b_reply_connect_error(rq, "failed_precondition", "cyclic symlink or chain >255 links at %s", path);
    case EHOSTDOWN: case ESRCH: return e2b_gone(rq);
    case ENOSPC: return e2b_reply_connect_error(rq, "resource_exhausted", "not enough disk space available");
    default: return e2b_reply_connect_error(rq, "internal", "%s %s: %s", what, path, strerror(-rc));
    }
}

static json_t *e2b_fs_body(struct e2b_req *rq)
{
    json_t *j = rq->body.len ? json_loadb(rq->body.data, rq->body.len, 0, NULL) : json_object();
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int e2b_fs_stat(struct e2b_req *rq, struct e2b_sbx *s, uint32_t uid, const char *abs,
                       bool follow, const char *key)
{
    struct sf_fs_entry e;
    char target[4096];
    int rc = e2b_fs_ops(s)->stat(s->sb, uid, abs, follow, &e, target, sizeof(target));
    if (rc < 0) return e2b_fs_error(rq, rc, "error statting", abs);
    return e2b_reply_json(rq, 200, json_pack("{s:o}", key, e2b_entry_json(&e)));
}

/* A listing is built in memory before it is sent, and the sandbox shapes
 * it: 62 directories of 250-byte names make every path below them 16 KB,
 * so 20000 empty files there held a GB of the worker's memory. Bounded by
 * entries and by the size of their text (each entry's JSON object costs
 * several times its strings; 256 bytes stands for its other fields). */
struct e2b_list {
    json_t *arr;
    size_t bytes;
};

static int e2b_fs_list_cb(void *arg, const struct sf_fs_entry *e)
{
    struct e2b_list *l = arg;
    l->bytes += strlen(e->path) + strlen(e->name) + (e->symlink_target ? strlen(e->symlink_target) : 0) + 256;
    if (json_array_size(l->arr) >= E2B_LIST_MAX_ENTRIES || l->bytes > E2B_LIST_MAX_BYTES) return -E2BIG;
    json_array_append_new(l->arr, e2b_entry_json(e));
    return 0;
}

/* ---- watchers ----------------------------------------------------------------- */

static const char *e2b_event_type(enum sf_fs_event_kind k)
{
    switch (k) {
    case SF_FS_EV_CREATE: return "EVENT_TYPE_CREATE";
    case SF_FS_EV_WRITE: return "EVENT_TYPE_WRITE";
    case SF_FS_EV_REMOVE: return "EVENT_TYPE_REMOVE";
    case SF_FS_EV_RENAME: return "EVENT_TYPE_RENAME";
    case SF_FS_EV_CHMOD: return "EVENT_TYPE_CHMOD";
    }
    return "EVENT_TYPE_UNSPECIFIED";
}

static void e2b_collect_event(void *arg, const struct sf_fs_event *ev)
{
    json_t *arr = arg;
    if (json_array_size(arr) < E2B_WATCH_EVENTS_MAX)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "name", ev->name, "type",
                                             e2b_event_type(ev->kind)));
}

/* A watch, counted against the worker's cap; give it back with
 * e2b_watch_close. */
static int e2b_watch_open(struct e2b_req *rq, struct e2b_sbx *s, uint32_t uid, json_t *body,
                          struct sf_fs_watch **w)
{
    if (!e2b_registry_watch_take(rq->reg)) {
        e2b_reply_connect_error(rq, "resource_exhausted", "this server has %d directory watches "
                                "open already (all sandboxes together)", E2B_WATCHES_MAX);
        return -EAGAIN;
    }
    char *abs = e2b_resolve(json_string_value(json_object_get(body, "path")));
    struct sf_fs_entry e;
    int rc = e2b_fs_ops(s)->stat(s->sb, uid, abs, true, &e, NULL, 0);
    if (rc == 0 && e.type != SF_FS_DIR) rc = -ENOTDIR;
    if (rc == 0) rc = e2b_fs_ops(s)->watch(s->sb, uid, abs, json_is_true(json_object_get(body, "recursive")), w);
    if (rc < 0) {
        e2b_fs_error(rq, rc, "error watching", abs);
        e2b_registry_watch_give(rq->reg);
    }
    free(abs);
    return rc;
}

static void e2b_watch_close(struct e2b_registry *r, struct sf_fs_watch *w)
{
    if (!w) return;
    sf_fs_watch_free(w);
    e2b_registry_watch_give(r);
}

void e2b_fs_watchers_free(struct e2b_registry *r, struct e2b_sbx *s)
{
    while (s->watchers) {
        struct e2b_watcher *w = s->watchers;
        s->watchers = w->next;
        e2b_watch_close(r, w->w);
        json_decref(w->events);
        free(w);
    }
}

static int e2b_watchers(struct e2b_req *rq, struct e2b_sbx *s, const char *method, uint32_t uid,
                        json_t *body)
{
    const char *id = json_string_value(json_object_get(body, "watcherId"));
    int ret;
    if (!strcmp(method, "CreateWatcher")) {
        struct sf_fs_watch *fw;
        if (e2b_watch_open(rq, s, uid, body, &fw) < 0) return MHD_YES;
        struct e2b_watcher *w = sf_xcalloc(1, sizeof(*w));
        sf_random_hex(w->id, sizeof(w->id), 32);
        w->uid = uid;
        w->w = fw;
        w->events = json_array();
        pthread_mutex_lock(&s->wlock);
        size_t n = 0;
        for (struct e2b_watcher *x = s->watchers; x; x = x->next) n++;
        bool full = n >= E2B_WATCHERS_MAX;
        if (!full) {
            w->next = s->watchers;
            s->watchers = w;
        }
        pthread_mutex_unlock(&s->wlock);
        if (full) {
            e2b_watch_close(rq->reg, fw);
            json_decref(w->events);
            free(w);
            return e2b_reply_connect_error(rq, "resource_exhausted", "at most %d watchers per sandbox",
                                           E2B_WATCHERS_MAX);
        }
        return e2b_reply_json(rq, 200, json_pack("{s:s}", "watcherId", w->id));
    }
    pthread_mutex_lock(&s->wlock);
    struct e2b_watcher **pp = &s->watchers;
    while (*pp && (!id || strcmp((*pp)->id, id))) pp = &(*pp)->next;
    struct e2b_watcher *w = *pp;
    if (!w) {
        pthread_mutex_unlock(&s->wlock);
        return e2b_reply_connect_error(rq, "not_found", "watcher with id %s not found", id ? id : "");
    }
    if (!strcmp(method, "GetWatcherEvents")) {
        sf_fs_watch_read(w->w, e2b_collect_event, w->events);
        json_t *ev = w->events;
        w->events = json_array();
        pthread_mutex_unlock(&s->wlock);
        return e2b_reply_json(rq, 200, json_array_size(ev) ? json_pack("{s:o}", "events", ev)
                                                           : (json_decref(ev), json_object()));
    }
    *pp = w->next;                                        /* RemoveWatcher */
    pthread_mutex_unlock(&s->wlock);
    e2b_watch_close(rq->reg, w->w);
    json_decref(w->events);
    free(w);
    ret = e2b_reply_json(rq, 200, json_object());
    return ret;
}

/* ---- WatchDir: a server stream ---------------------------------------------- */

struct e2b_watch_stream {
    struct e2b_registry *r;
    struct e2b_sbx *s;
    struct sf_fs_watch *w;
    struct sf_buf pend;
    size_t off;
    int keepalive_ms;
    int64_t last_ms, deadline_ms;
    bool ended;
};

static void e2b_ws_event(void *arg, const struct sf_fs_event *ev)
{
    struct e2b_watch_stream *ws = arg;
    json_t *j = json_pack("{s:{s:s,s:s}}", "filesystem", "name", ev->name, "type",
                          e2b_event_type(ev->kind));
    sf_e2b_frame_json(&ws->pend, 0, j);
    json_decref(j);
}

static ssize_t e2b_ws_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct e2b_watch_stream *ws = cls;
    (void)pos;
    while (ws->off == ws->pend.len) {
        ws->pend.len = ws->off = 0;
        if (ws->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        int64_t now = sf_now_ms();
        pthread_mutex_lock(&ws->s->mu);
        bool killed = ws->s->killed;
        pthread_mutex_unlock(&ws->s->mu);
        if (killed || (ws->deadline_ms > 0 && now >= ws->deadline_ms)) {
            sf_e2b_put_trailer(&ws->pend, killed ? "unavailable" : "deadline_exceeded",
                               killed ? "the sandbox was killed" : "context deadline exceeded");
            ws->ended = true;
            break;
        }
        if (now - ws->last_ms >= ws->keepalive_ms) {
            sf_e2b_frame(&ws->pend, 0, "{\"keepalive\":{}}", 16);
            ws->last_ms = now;
            break;
        }
        /* Wake at least twice a second to notice a kill or the deadline. */
        struct pollfd pfd = { sf_fs_watch_fd(ws->w), POLLIN, 0 };
        if (poll(&pfd, 1, 500) > 0) {
            sf_fs_watch_read(ws->w, e2b_ws_event, ws);
            if (ws->pend.len) ws->last_ms = sf_now_ms();
        }
    }
    size_t n = ws->pend.len - ws->off < max ? ws->pend.len - ws->off : max;
    memcpy(buf, ws->pend.data + ws->off, n);
    ws->off += n;
    return (ssize_t)n;
}

static void e2b_ws_free(void *cls)
{
    struct e2b_watch_stream *ws = cls;
    e2b_watch_close(ws->r, ws->w);
    sf_buf_free(&ws->pend);
    e2b_registry_put(ws->r, ws->s);
    free(ws);
}

static int e2b_watch_dir(struct e2b_req *rq, struct e2b_sbx *s, uint32_t uid)
{
    json_t *body = e2b_stream_request(rq);
    struct sf_fs_watch *w = NULL;
    if (!body || e2b_watch_open(rq, s, uid, body, &w) < 0) {
        int ret = body ? MHD_YES : e2b_stream_error(rq, "invalid_argument", "bad WatchDirRequest");
        json_decref(body);
        return ret;
    }
    json_decref(body);
    struct e2b_watch_stream *ws = sf_xcalloc(1, sizeof(*ws));
    const char *t = e2b_header(rq, "Connect-Timeout-Ms");
    long long tm = t ? strtoll(t, NULL, 10) : 0;
    ws->r = rq->reg;
    ws->s = s;
    e2b_registry_ref(rq->reg, s);
    ws->w = w;
    ws->keepalive_ms = e2b_keepalive_s(rq) * 1000;
    ws->last_ms = sf_now_ms();
    ws->deadline_ms = tm > 0 ? sf_now_ms() + tm : 0;
    sf_e2b_frame(&ws->pend, 0, "{\"start\":{}}", 12);
    struct MHD_Response *resp = sf_mhd_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                     e2b_ws_read, ws, e2b_ws_free);
    sf_mhd_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/connect+json");
    int ret = sf_mhd_queue_response(rq->conn, 200, resp);
    sf_mhd_destroy_response(resp);
    return ret;
}

/* ---- dispatch ------------------------------------------------------------------- */

int e2b_fs_handle(struct e2b_req *rq, const char *method, uint32_t uid)
{
    struct e2b_sbx *s = rq->sbx;
    if (!e2b_fs_ops(s))
        return e2b_reply_connect_error(rq, "unimplemented", "this sandbox has no file system service");
    if (!strcmp(method, "WatchDir")) return e2b_watch_dir(rq, s, uid);
    json_t *body = e2b_fs_body(rq);
    if (!body) return e2b_reply_connect_error(rq, "invalid_argument", "the request is not a JSON object");
    const char *path = json_string_value(json_object_get(body, "path"));
    char *abs = e2b_resolve(path);
    int ret, rc;
    if (!strcmp(method, "Stat")) {
        ret = e2b_fs_stat(rq, s, uid, abs, false, "entry");
    } else if (!strcmp(method, "MakeDir")) {
        rc = e2b_fs_ops(s)->mkdir(s->sb, uid, abs);
        if (rc == -ENOTDIR)
            ret = e2b_reply_connect_error(rq, "invalid_argument", "path already exists but it is not "
                                          "a directory: %s", abs);
        else if (rc < 0)
            ret = e2b_fs_error(rq, rc, "error making directory", abs);
        else
            ret = e2b_fs_stat(rq, s, uid, abs, false, "entry");
    } else if (!strcmp(method, "Move")) {
        char *from = e2b_resolve(json_string_value(json_object_get(body, "source")));
        char *to = e2b_resolve(json_string_value(json_object_get(body, "destination")));
        rc = e2b_fs_ops(s)->rename(s->sb, uid, from, to);
        if (rc == -ENOENT) ret = e2b_reply_connect_error(rq, "not_found", "source file not found: %s", from);
        else if (rc < 0) ret = e2b_fs_error(rq, rc, "error renaming", from);
        else ret = e2b_fs_stat(rq, s, uid, to, false, "entry");
        free(from);
        free(to);
    } else if (!strcmp(method, "ListDir")) {
        json_t *d = json_object_get(body, "depth");
        struct e2b_list l = { json_array(), 0 };
        json_int_t depth = json_is_integer(d) ? json_integer_value(d) : 1;
        rc = e2b_fs_ops(s)->list(s->sb, uid, abs, depth < 1 ? 1 : depth > 64 ? 64 : (int)depth,
                                 e2b_fs_list_cb, &l);
        if (rc == -ENOENT) ret = e2b_reply_connect_error(rq, "not_found", "directory not found: %s", abs);
        else if (rc == -E2BIG)
            ret = e2b_reply_connect_error(rq, "resource_exhausted", "listing %s: more than %d entries "
                                          "or %u MiB: list it with a smaller depth", abs,
                                          E2B_LIST_MAX_ENTRIES, E2B_LIST_MAX_BYTES >> 20);
        else if (rc < 0) ret = e2b_fs_error(rq, rc, "error reading directory", abs);
        else ret = e2b_reply_json(rq, 200, json_pack("{s:O}", "entries", l.arr));
        json_decref(l.arr);
    } else if (!strcmp(method, "Remove")) {
        rc = e2b_fs_ops(s)->remove(s->sb, uid, abs);
        ret = rc < 0 ? e2b_fs_error(rq, rc, "error removing file or directory", abs)
                     : e2b_reply_json(rq, 200, json_object());
    } else if (!strcmp(method, "CreateWatcher") || !strcmp(method, "GetWatcherEvents") ||
               !strcmp(method, "RemoveWatcher")) {
        ret = e2b_watchers(rq, s, method, uid, body);
    } else {
        ret = e2b_reply_connect_error(rq, "unimplemented", "filesystem.Filesystem/%s is not "
                                      "supported by this server", method);
    }
    free(abs);
    json_decref(body);
    return ret;
}
