/* worker/e2b/e2b_registry.h: the sandboxes an E2B-compatible server has
 * created: id → local sandbox + its process host (sandbox_proc.h) + E2B facts
 * (template, token, metadata, envVars, end time). A reaper thread kills
 * each sandbox when its timeout passes, as E2B does.
 *
 * Lifetime: entries are reference counted. Kill (DELETE or expiry) takes
 * an entry out of the table, SIGKILLs its processes and stops its process
 * host at once, so every open stream ends; the local sandbox itself is
 * destroyed when the last reference is dropped (a file transfer in flight
 * finishes first).
 * Locks, in order: registry mu → entry mu → proc host → process / plock;
 * wlock (the polled watchers) is a leaf of its own.
 * Thread: all functions are thread-safe. */
#ifndef SF_E2B_REGISTRY_H
#define SF_E2B_REGISTRY_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "sandbox.h"
#include "sandbox_proc.h"

struct e2b_proc;
struct e2b_watcher;
struct e2b_net_req;

/* What a sandbox is, as E2B's API knows it: plain data, so that it can be
 * written down or moved (a fleet gateway keeps these in its broker); the
 * rest of the struct is this process's handles on it. */
struct e2b_sbx {
    char id[32];
    char template_id[128];
    char token[48];                  /* "" when created with secure=false */
    json_t *metadata, *env_vars;     /* objects, owned; read-only after create */
    int64_t started_wall_ms;
    int timeout_s;                   /* as created */
    bool network;
    char traffic_token[48];          /* "" unless allow_public_traffic false (e2b_network.h) */
    char host_mask[256];             /* mask_request_host, "" for none */
    int memory_mb, disk_mb, cpus;    /* its size, for get_info */
    /* under the registry's mu */
    bool paused;                     /* frozen: not running, not reaped */
    int64_t paused_left_ms;          /* of its timeout, when it was paused */
    /* under mu: the last metrics sample, for CPU % between two */
    int64_t sample_cpu_us, sample_ms;
    /* under mu */
    pthread_mutex_t mu;              /* lifecycle: files, spawn, signal, kill */
    struct sf_sandbox *sb;
    struct sf_proc_host *ph;     /* NULL once killed */
    bool killed;
    int64_t end_wall_ms;             /* when the reaper kills it */
    /* under plock (a leaf lock: process callbacks take it) */
    pthread_mutex_t plock;
    struct e2b_proc **procs;         /* running processes, for List and lookups */
    size_t nprocs, cap;
    /* under wlock: polled directory watchers (e2b_fs.c) */
    pthread_mutex_t wlock;
    struct e2b_watcher *watchers;
    int refs;                        /* under the registry's mu */
};

struct e2b_registry;

/* max: sandboxes running at once (429 beyond); max_paused: paused ones
 * kept at once (0: max). The provider is borrowed. */
struct e2b_registry *e2b_registry_new(struct sf_sandbox_provider *prov, int max, int max_paused,
                                      const struct sf_log *lg);
/* Stop the reaper, kill every sandbox, refuse new ones (-ESHUTDOWN). */
void e2b_registry_kill_all(struct e2b_registry *r);
/* Kill what is left and free. NULL is a no-op. */
void e2b_registry_free(struct e2b_registry *r);

struct e2b_create {
    const char *template_id;
    int timeout_s;
    json_t *metadata, *env_vars;     /* borrowed; copied */
    bool secure, network;
    const struct e2b_net_req *net;   /* egress rules and ingress settings (e2b_network.h) */
    struct sf_limits limits;         /* filled under the worker's caps */
    const char *rootfs;              /* the template's root; NULL: the default image */
    const char *domain;              /* --e2b-domain: other sandboxes reach this one's
                                        get_host names too; NULL: none */
};

/* Create a sandbox; the result carries one reference for the caller.
 * -EAGAIN when at the limit, else -errno from the backend (message in err). */
int e2b_registry_create(struct e2b_registry *r, const struct e2b_create *c, struct e2b_sbx **out,
                        char *err, size_t errlen);
/* Pause: freeze every process, stop its timeout, stop counting it as
 * running. 0, -ENOENT, -EALREADY (paused already), -EUSERS (max_paused
 * are paused; message in err), or -errno of the freezer (message in err). */
int e2b_registry_pause(struct e2b_registry *r, const char *id, char *err, size_t errlen);
/* Resume a paused sandbox (its timeout restarts at timeout_s, or what was
 * left when 0). 1 resumed, 0 it was running, -ENOENT, -EAGAIN at the
 * running cap, -errno of the freezer. */
int e2b_registry_resume(struct e2b_registry *r, const char *id, int timeout_s, char *err,
                        size_t errlen);
bool e2b_sbx_paused(struct e2b_registry *r, struct e2b_sbx *s);
/* A live sandbox (running or paused) with one more reference, or NULL. */
struct e2b_sbx *e2b_registry_get(struct e2b_registry *r, const char *id);
void e2b_registry_put(struct e2b_registry *r, struct e2b_sbx *s);
/* One more reference to s, which the caller already holds one to. */
void e2b_registry_ref(struct e2b_registry *r, struct e2b_sbx *s);
/* 0, or -ENOENT when not (or no longer) there. */
int e2b_registry_kill(struct e2b_registry *r, const char *id);
/* Set the end to now + timeout_s; with extend_only, never shorten. */
int e2b_registry_set_timeout(struct e2b_registry *r, const char *id, int timeout_s,
                             bool extend_only);
/* New references to every live sandbox (caller puts each), newest first. */
size_t e2b_registry_snapshot(struct e2b_registry *r, struct e2b_sbx ***out);

/* Polled watchers are freed with their sandbox (e2b_fs.c). */
void e2b_fs_watchers_free(struct e2b_registry *r, struct e2b_sbx *s);
/* Directory watches open in this worker, all sandboxes together: inotify
 * instances are charged to the worker's (root's) host-wide budget, so a
 * sandbox must not be able to spend it. take: false at the cap. */
#define E2B_WATCHES_MAX 32
bool e2b_registry_watch_take(struct e2b_registry *r);
void e2b_registry_watch_give(struct e2b_registry *r);

/* Fleet hooks (worker/e2b/e2b_member.c). fn(arg, id) is called, with no
 * lock held, after a sandbox was created, killed, paused, resumed or had its
 * end moved. Set
 * once before the server serves. */
void e2b_registry_observe(struct e2b_registry *r, void (*fn)(void *arg, const char *id), void *arg);
/* Sandboxes alive now (running + paused; running: those counted against
 * the cap), and the cap. */
size_t e2b_registry_count(struct e2b_registry *r, int *running);
int e2b_registry_max(const struct e2b_registry *r);
/* Refuse new sandboxes (-ESHUTDOWN, "draining"); the live ones go on. */
void e2b_registry_drain(struct e2b_registry *r);

/* Process table of a sandbox (worker/e2b/e2b_proc.c uses these). */
void e2b_sbx_add_proc(struct e2b_sbx *s, struct e2b_proc *p);
void e2b_sbx_remove_proc(struct e2b_sbx *s, struct e2b_proc *p);

#endif
