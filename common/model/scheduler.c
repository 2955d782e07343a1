/* common/model/scheduler.c: one workflow run as a state machine (see scheduler.h).
 *
 * Per step we keep its state, its input once known, and per element (one for
 * a plain step, N for a map) a done flag and the current attempt. Elements of
 * a ready step are handed out in order by a cursor; retries wait in a small
 * list with their ready time. Map outputs are stored at their index, so the
 * assembled array is in input order whatever order results arrive in. */
#include "scheduler.h"
#include "retry.h"
#include "gate.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum step_state { ST_WAITING, ST_READY, ST_SUCCEEDED, ST_FAILED, ST_TIMEOUT, ST_SKIPPED };

struct elem {
    uint16_t attempt;     /* current attempt, 0 = never dispatched */
    uint8_t done;
};

struct step_run {
    enum step_state state;
    json_t *input;        /* the input (for a map: the array) */
    int64_t n;            /* elements */
    int64_t cursor;       /* next element never dispatched */
    int64_t n_done;
    struct elem *el;
    json_t *output;       /* plain: the output; map: array of outputs */
    int exit_code;
    int max_attempt;
    int64_t started_ms, ended_ms;
    char *stderr_tail, *error, *worker;
};

struct retry {
    size_t step;
    int64_t index;
    int attempt;
    int64_t ready_at;
};

struct sf_sched {
    const struct sf_workflow *wf;
    char *run_id;
    json_t *input_override;
    struct step_run *st;
    struct retry *retries;
    size_t n_retries, cap_retries;
    int64_t retry_base_ms;
    int64_t n_retried;
    bool external_retries;   /* the executor retries (workers): every failure is final */
    int priority;         /* of steps without their own */
    size_t *prio_order;   /* step indexes by priority, then topological order */
    struct sf_gate *gate; /* central runs: in-process gates (borrowed), or NULL */
    int64_t gate_wake;    /* earliest time a held-back task may pass its gate, or -1 */
};

static bool terminal(enum step_state s) { return s >= ST_SUCCEEDED; }

static int step_priority(const struct sf_sched *s, size_t i)
{
    int p = s->wf->steps[i].priority;
    return p >= 0 ? p : s->priority;
}

/* Steps by priority (higher first), in topological order within one. */
static void order_by_priority(struct sf_sched *s)
{
    size_t n = s->wf->n_steps, k = 0;
    if (!s->prio_order) s->prio_order = sf_xcalloc(n ? n : 1, sizeof(size_t));
    for (int p = SF_PRIORITY_MAX; p >= 0; p--)
        for (size_t j = 0; j < n; j++)
            if (step_priority(s, s->wf->order[j]) == p) s->prio_order[k++] = s->wf->order[j];
}

/* May a task of step i start now (central runs: the in-process gate)?
 * Remembers the earliest time a token comes for next_wakeup. */
static bool admit(struct sf_sched *s, size_t i, int64_t index, int64_t now)
{
    const struct sf_step *def = &s->wf->steps[i];
    int64_t at;
    if (!s->gate || (!def->concurrency.key[0] && !def->rate.key[0])) return true;
    char *id = sf_xasprintf("%s:%s:%lld", s->run_id, def->id, (long long)index);
    bool ok = sf_gate_admit(s->gate, &def->concurrency, &def->rate, id, now, &at);
    free(id);
    if (!ok && at >= 0 && (s->gate_wake < 0 || at < s->gate_wake)) s->gate_wake = at;
    return ok;
}

struct sf_sched *sf_sched_new(const struct sf_workflow *wf, const char *run_id,
                              json_t *input_override)
{
    struct sf_sched *s = sf_xcalloc(1, sizeof(*s));
    s->wf = wf;
    s->run_id = sf_xstrdup(run_id);
    s->input_override = input_override;
    s->st = sf_xcalloc(wf->n_steps, sizeof(struct step_run));
    s->retry_base_ms = 500;
    s->gate_wake = -1;
    order_by_priority(s);
    return s;
}

void sf_sched_free(struct sf_sched *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->wf->n_steps; i++) {
        struct step_run *sr = &s->st[i];
        json_decref(sr->input);
        json_decref(sr->output);
        free(sr->el);
        free(sr->stderr_tail);
        free(sr->error);
        free(sr->worker);
    }
    free(s->st);
    free(s->retries);
    free(s->prio_order);
    free(s->run_id);
    free(s);
}

void sf_sched_set_retry_base_ms(struct sf_sched *s, int64_t ms) { s->retry_base_ms = ms; }
void sf_sched_set_external_retries(struct sf_sched *s, bool on) { s->external_retries = on; }
void sf_sched_set_priority(struct sf_sched *s, int priority)
{
    s->priority = priority;
    order_by_priority(s);
}

void sf_sched_set_gate(struct sf_sched *s, struct sf_gate *g) { s->gate = g; }
const char *sf_sched_run_id(const struct sf_sched *s) { return s->run_id; }

static void finish_step(struct sf_sched *s, size_t i, enum step_state state, int64_t now)
{
    struct step_run *sr = &s->st[i];
    sr->state = state;
    sr->ended_ms = now;
    if (!sr->started_ms) sr->started_ms = now;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = sf_xstrdup(src);
}

/* Compute the input of step i from its definition and its needs. */
static json_t *step_input(struct sf_sched *s, size_t i)
{
    const struct sf_step *def = &s->wf->steps[i];
    if (def->input) {
        if (def->n_needs == 0 && s->input_override) return json_incref(s->input_override);
        return json_incref(def->input);
    }
    if (def->n_needs == 0) return s->input_override ? json_incref(s->input_override) : json_null();
    if (def->n_needs == 1) {
        json_t *o = s->st[def->need_idx[0]].output;
        return o ? json_incref(o) : json_null();
    }
    json_t *obj = json_object();
    for (size_t j = 0; j < def->n_needs; j++) {
        json_t *o = s->st[def->need_idx[j]].output;
        json_object_set(obj, def->needs[j], o ? o : json_null());
    }
    return obj;
}

static const char *json_kind(json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Move waiting steps forward: ready when all needs succeeded, skipped when
 * any need did not. Repeats until nothing changes (skips cascade). */
static void advance(struct sf_sched *s, int64_t now)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t k = 0; k < s->wf->n_steps; k++) {
            size_t i = s->wf->order[k];
            const struct sf_step *def = &s->wf->steps[i];
            struct step_run *sr = &s->st[i];
            if (sr->state != ST_WAITING) continue;
            bool all_ok = true, any_bad = false;
            const char *bad = NULL;
            for (size_t j = 0; j < def->n_needs; j++) {
                enum step_state ns = s->st[def->need_idx[j]].state;
                if (ns != ST_SUCCEEDED) all_ok = false;
                if (terminal(ns) && ns != ST_SUCCEEDED && !any_bad) {
                    any_bad = true;
                    bad = def->needs[j];
                }
            }
            if (any_bad) {
                char msg[256];
                snprintf(msg, sizeof(msg), "skipped: need '%s' did not succeed", bad);
                set_str(&sr->error, msg);
                finish_step(s, i, ST_SKIPPED, now);
                changed = true;
                continue;
            }
            if (!all_ok) continue;
            sr->input = step_input(s, i);
            if (def->map && !json_is_array(sr->input)) {
                char msg[256];
                snprintf(msg, sizeof(msg), "map input is not an array (got %s)",
                         json_kind(sr->input));
                set_str(&sr->error, msg);
                finish_step(s, i, ST_FAILED, now);
                changed = true;
                continue;
            }
            sr->n = def->map ? (int64_t)json_array_size(sr->input) : 1;
            sr->el = sf_xcalloc((size_t)(sr->n ? sr->n : 1), sizeof(struct elem));
            if (def->map) {
                sr->output = json_array();
                for (int64_t e = 0; e < sr->n; e++) json_array_append_new(sr->output, json_null());
            }
            sr->state = ST_READY;
            if (sr->n == 0) {                  /* map over [] succeeds at once with [] */
                finish_step(s, i, ST_SUCCEEDED, now);
                changed = true;
            }
        }
    }
}

static struct sf_task *make_task(struct sf_sched *s, size_t i, int64_t index, int attempt)
{
    const struct sf_step *def = &s->wf->steps[i];
    struct step_run *sr = &s->st[i];
    struct sf_task *t = sf_xcalloc(1, sizeof(*t));
    t->v = SF_WIRE_VERSION;
    t->id = sf_xasprintf("%s:%s:%lld", s->run_id, def->id, (long long)index);
    t->run_id = sf_xstrdup(s->run_id);
    t->step = sf_xstrdup(def->id);
    t->index = index;
    t->attempt = attempt;
    t->max_attempts = def->retries + 1;
    t->run = sf_xstrdup(def->run);
    t->files = def->files ? json_incref(def->files) : NULL;
    t->input = def->map ? json_incref(json_array_get(sr->input, (size_t)index))
                        : json_incref(sr->input);
    t->timeout_s = def->timeout_s;
    t->limits = def->limits;
    t->env = def->env ? json_incref(def->env) : NULL;
    t->network = def->network;
    t->template_name = sf_xstrdup(def->template_name);
    t->net_policy = sf_netpolicy_dup(def->net_policy);
    t->serve = def->serve;
    t->secrets = def->secrets ? json_incref(def->secrets) : NULL;
    t->inject = def->inject ? json_incref(def->inject) : NULL;
    t->concurrency = def->concurrency;
    t->rate = def->rate;
    t->priority = def->priority >= 0 ? def->priority : s->priority;
    t->created_at = sf_wall_ms();
    sr->el[index].attempt = (uint16_t)attempt;
    return t;
}

struct sf_task *sf_sched_next(struct sf_sched *s, int64_t now)
{
    advance(s, now);
    s->gate_wake = -1;
    for (size_t r = 0; r < s->n_retries; r++) {        /* drop stale retries */
        struct step_run *sr = &s->st[s->retries[r].step];
        if (sr->state != ST_READY || sr->el[s->retries[r].index].done)
            s->retries[r--] = s->retries[--s->n_retries];
    }
    /* Highest priority first; within one, due retries before fresh tasks
     * (they have waited longest), fresh ones in topological order. A task
     * its gate holds back is passed over: other keys go on. */
    for (int p = SF_PRIORITY_MAX; p >= 0; p--) {
        for (size_t r = 0; r < s->n_retries; r++) {
            struct retry rt = s->retries[r];
            if (rt.ready_at > now || step_priority(s, rt.step) != p) continue;
            if (!admit(s, rt.step, rt.index, now)) continue;
            s->retries[r] = s->retries[--s->n_retries];
            return make_task(s, rt.step, rt.index, rt.attempt);
        }
        for (size_t k = 0; k < s->wf->n_steps; k++) {
            size_t i = s->prio_order[k];
            struct step_run *sr = &s->st[i];
            if (sr->state != ST_READY || step_priority(s, i) != p) continue;
            while (sr->cursor < sr->n && sr->el[sr->cursor].attempt) sr->cursor++;
            if (sr->cursor < sr->n && admit(s, i, sr->cursor, now)) return make_task(s, i, sr->cursor++, 1);
        }
    }
    return NULL;
}

int64_t sf_sched_next_wakeup(const struct sf_sched *s)
{
    int64_t w = s->gate_wake;
    for (size_t r = 0; r < s->n_retries; r++)
        if (w < 0 || s->retries[r].ready_at < w) w = s->retries[r].ready_at;
    return w;
}

void sf_sched_started(struct sf_sched *s, const struct sf_task *t, int64_t now)
{
    long i = sf_workflow_find(s->wf, t->step);
    if (i >= 0 && !s->st[i].started_ms) s->st[i].started_ms = now;
}

static enum step_state fail_state(enum sf_result_status st)
{
    return st == SF_RESULT_TIMEOUT ? ST_TIMEOUT : ST_FAILED;
}

int sf_sched_complete(struct sf_sched *s, const struct sf_result *r, int64_t now)
{
    if (!r->run_id || strcmp(r->run_id, s->run_id) || !r->step) return 1;
    if (s->gate) sf_gate_release(s->gate, r->task_id);   /* whatever becomes of the result */
    long i = sf_workflow_find(s->wf, r->step);
    if (i < 0) return 1;
    const struct sf_step *def = &s->wf->steps[i];
    struct step_run *sr = &s->st[i];
    advance(s, now);
    if (sr->state == ST_WAITING) return -EAGAIN;
    if (sr->state != ST_READY) return 1;          /* step already decided */
    if (r->index < 0 || r->index >= sr->n) return 1;
    struct elem *el = &sr->el[r->index];
    if (el->done) return 1;                        /* duplicate delivery */
    /* A failure for an attempt we did not hand out is stale — unless the
     * executor retries itself, when it reports only the last one. */
    if (r->status != SF_RESULT_OK && !s->external_retries && el->attempt && r->attempt != el->attempt)
        return 1;

    if (!sr->started_ms) sr->started_ms = now - r->duration_ms;
    if (r->attempt > sr->max_attempt) sr->max_attempt = r->attempt;
    if (!el->attempt) el->attempt = (uint16_t)r->attempt;   /* replayed from storage */
    set_str(&sr->worker, r->worker);
    set_str(&sr->stderr_tail, r->stderr_tail ? r->stderr_tail : "");

    if (r->status == SF_RESULT_OK) {
        el->done = 1;
        sr->n_done++;
        if (def->map)
            json_array_set(sr->output, (size_t)r->index, r->output ? r->output : json_null());
        else
            sr->output = json_incref(r->output ? r->output : json_null());
        sr->exit_code = r->exit_code;
        if (sr->n_done == sr->n) finish_step(s, (size_t)i, ST_SUCCEEDED, now);
        return 0;
    }
    sr->exit_code = r->exit_code;
    bool retriable = r->status != SF_RESULT_REJECTED && !s->external_retries;
    if (s->external_retries && r->attempt > 1) s->n_retried += r->attempt - 1;
    if (retriable && r->attempt < def->retries + 1) {
        if (s->n_retries == s->cap_retries) {
            s->cap_retries = s->cap_retries ? 2 * s->cap_retries : 8;
            s->retries = sf_xrealloc(s->retries, s->cap_retries * sizeof(struct retry));
        }
        s->retries[s->n_retries++] = (struct retry){ (size_t)i, r->index, r->attempt + 1,
                                                     now + sf_retry_delay_ms(s->retry_base_ms, r->attempt, 30000) };
        el->attempt = (uint16_t)(r->attempt + 1);
        s->n_retried++;
        return 0;
    }
    /* Final failure: the step fails now (a map fails fast); its dependants
     * are skipped on the next advance. */
    el->done = 1;
    sr->n_done++;
    char msg[1200];
    if (def->map)
        snprintf(msg, sizeof(msg), "element %lld: %s", (long long)r->index,
                 r->error ? r->error : sf_result_status_name(r->status));
    else
        snprintf(msg, sizeof(msg), "%s", r->error ? r->error : sf_result_status_name(r->status));
    set_str(&sr->error, msg);
    if (!def->map) sr->output = r->output ? json_incref(r->output) : NULL;
    finish_step(s, (size_t)i, fail_state(r->status), now);
    advance(s, now);
    return 0;
}

bool sf_sched_done(const struct sf_sched *s)
{
    for (size_t i = 0; i < s->wf->n_steps; i++)
        if (!terminal(s->st[i].state)) return false;
    return true;
}

bool sf_sched_succeeded(const struct sf_sched *s)
{
    for (size_t i = 0; i < s->wf->n_steps; i++)
        if (s->st[i].state != ST_SUCCEEDED) return false;
    return true;
}

void sf_sched_progress(const struct sf_sched *s, struct sf_sched_progress *p)
{
    memset(p, 0, sizeof(*p));
    p->steps_total = s->wf->n_steps;
    p->retries = s->n_retried;
    for (size_t i = 0; i < s->wf->n_steps; i++) {
        const struct step_run *sr = &s->st[i];
        if (terminal(sr->state)) p->steps_done++;
        if (sr->state == ST_WAITING) {
            p->tasks_known += s->wf->steps[i].map ? 0 : 1;
        } else {
            p->tasks_known += sr->n;
            p->tasks_done += terminal(sr->state) ? sr->n : sr->n_done;
        }
    }
}

static const char *state_name(enum step_state st)
{
    switch (st) {
    case ST_SUCCEEDED: return "succeeded";
    case ST_FAILED: return "failed";
    case ST_TIMEOUT: return "timeout";
    case ST_SKIPPED: return "skipped";
    case ST_WAITING: case ST_READY: break;
    }
    return "pending";
}

void sf_sched_step_progress(const struct sf_sched *s, size_t i, struct sf_sched_step *out)
{
    const struct step_run *sr = &s->st[i];
    out->state = sr->state == ST_WAITING ? "waiting" : sr->state == ST_READY ? "running"
                                                                         : state_name(sr->state);
    out->total = sr->state == ST_WAITING ? (s->wf->steps[i].map ? 0 : 1) : sr->n;
    out->done = terminal(sr->state) ? out->total : sr->n_done;
}

json_t *sf_sched_result_doc(const struct sf_sched *s, int64_t duration_ms)
{
    json_t *steps = json_object();
    for (size_t i = 0; i < s->wf->n_steps; i++) {
        const struct step_run *sr = &s->st[i];
        json_t *o = json_object();
        json_object_set_new(o, "status", json_string(state_name(sr->state)));
        json_object_set(o, "output", sr->output ? sr->output : json_null());
        if (sr->state == ST_SKIPPED || sr->max_attempt == 0)
            json_object_set_new(o, "exit_code", json_null());
        else
            json_object_set_new(o, "exit_code", json_integer(sr->exit_code));
        json_object_set_new(o, "attempts", json_integer(sr->max_attempt));
        json_object_set_new(o, "duration_ms",
                            json_integer(sr->ended_ms > sr->started_ms ? sr->ended_ms - sr->started_ms : 0));
        json_object_set_new(o, "stderr_tail", json_string(sr->stderr_tail ? sr->stderr_tail : ""));
        json_object_set_new(o, "error", sr->error ? json_string(sr->error) : json_null());
        json_object_set_new(o, "worker", sr->worker ? json_string(sr->worker) : json_null());
        json_object_set_new(steps, s->wf->steps[i].id, o);
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:o}", "workflow", s->wf->name, "run_id", s->run_id,
                     "status", sf_sched_succeeded(s) ? "succeeded" : "failed",
                     "duration_ms", (json_int_t)duration_ms, "steps", steps);
}
