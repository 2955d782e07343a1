/* coordinator/serve/serve_submit.c: turn a submission (serve.h) into a validated
 * workflow. Both forms end in sf_workflow_parse with no base directory: a
 * submitted workflow never reads the server's disk, its files are in the
 * submission. All problems are reported at once, like `run` does. */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void serve_submission_clear(struct serve_submission *s)
{
    sf_workflow_free(s->wf);
    json_decref(s->input);
    free(s->run_id);
    free(s->reply_to);
    memset(s, 0, sizeof(*s));
}

/* Replace each step's file references by the contents from 'files'. */
static int inline_files(json_t *wf, json_t *files, struct sf_buf *errs)
{
    json_t *steps = json_object_get(wf, "steps"), *st, *v;
    const char *dest;
    size_t i;
    int bad = 0;
    json_array_foreach(steps, i, st) {
        json_t *sf = json_object_get(st, "files");
        const char *id = json_string_value(json_object_get(st, "id"));
        if (!json_is_object(sf)) continue;
        json_object_foreach(sf, dest, v) {
            json_t *content = json_is_string(v) ? json_object_get(files, json_string_value(v)) : NULL;
            if (!content) {
                sf_buf_appendf(errs, "submission: step '%s': file '%s' is not in the submission's \"files\"\n",
                               id ? id : "?", json_is_string(v) ? json_string_value(v) : dest);
                bad = 1;
                continue;
            }
            json_object_set(sf, dest, content);
        }
    }
    return bad ? -EINVAL : 0;
}

static char *opt_string(json_t *o, const char *key, struct sf_buf *errs, int *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v) || !json_string_length(v)) {
        sf_buf_appendf(errs, "submission: \"%s\" must be a non-empty string\n", key);
        *bad = 1;
        return NULL;
    }
    return sf_xstrdup(json_string_value(v));
}

int serve_submission_parse(const char *data, size_t len, struct serve_submission *out,
                           struct sf_buf *errs)
{
    json_error_t je;
    json_t *doc = json_loadb(data, len, 0, &je), *wf = NULL, *files;
    char *text = NULL;
    int bad = 0, rc = -EINVAL;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(doc)) {
        sf_buf_appendf(errs, "submission: not a JSON object%s%s\n", doc ? "" : ": ", doc ? "" : je.text);
        goto out;
    }
    if (json_object_get(doc, "steps")) {            /* a bare workflow, files inline */
        wf = json_incref(doc);
    } else {
        json_t *w = json_object_get(doc, "workflow");
        wf = json_is_string(w) ? json_loads(json_string_value(w), 0, &je) : json_incref(w);
        if (!json_is_object(wf)) {
            sf_buf_appendf(errs, "submission: needs \"steps\" (a workflow) or \"workflow\" (an object)\n");
            goto out;
        }
        files = json_object_get(doc, "files");
        if (files && !json_is_object(files)) {
            sf_buf_appendf(errs, "submission: \"files\" must be an object of name -> content\n");
            goto out;
        }
        if (files) {
            json_t *copy = json_deep_copy(wf);
            json_decref(wf);
            wf = copy;
            if (inline_files(wf, files, errs) < 0) bad = 1;
        }
        if (json_object_get(doc, "input")) out->input = json_incref(json_object_get(doc, "input"));
        out->run_id = opt_string(doc, "run_id", errs, &bad);
        out->reply_to = opt_string(doc, "reply_to", errs, &bad);
        if (out->run_id && !sf_valid_name(out->run_id, SF_RUN_ID_MAX)) {
            sf_buf_appendf(errs, "submission: \"run_id\" must be letters, digits, '_', '-', '.'\n");
            bad = 1;
        } else if (out->run_id && !strncmp(out->run_id, SERVE_STREAM_ID_PREFIX, strlen(SERVE_STREAM_ID_PREFIX))) {
            /* Anyone can predict such an id (sub-<partition>-<offset> on
             * Kafka): taken first, it would turn the stream submission away
             * and put its rejection under the taker's run. */
            sf_buf_appendf(errs, "submission: \"run_id\" '%s': ids starting with '" SERVE_STREAM_ID_PREFIX
                           "' are reserved for stream submissions (sub-<entry id>)\n", out->run_id);
            bad = 1;
        }
        char perr[128];
        if (sf_priority_from_json(json_object_get(doc, "priority"), &out->priority, perr, sizeof(perr)) < 0) {
            sf_buf_appendf(errs, "submission: %s\n", perr);
            bad = 1;
        }
    }
    text = json_dumps(wf, JSON_COMPACT);
    if (sf_workflow_parse(text, strlen(text), "submission", NULL, &out->wf, errs) < 0) bad = 1;
    rc = bad ? -EINVAL : 0;
out:
    free(text);
    json_decref(wf);
    json_decref(doc);
    if (rc < 0) serve_submission_clear(out);
    return rc;
}
