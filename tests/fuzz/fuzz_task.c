/* libFuzzer target: task and result decoders (outside input from any
 * producer on the queue). Whatever decodes must survive an encode/decode
 * round trip unchanged; whatever does not must come with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    struct sf_task *t = sf_task_decode((const char *)data, size, err, sizeof(err));
    if (t) {
        char *enc = sf_task_encode(t);
        struct sf_task *t2 = sf_task_decode(enc, strlen(enc), err, sizeof(err));
        if (!t2 || strcmp(t2->id, t->id) || t2->attempt != t->attempt ||
            !json_equal(t2->input, t->input) || t2->priority != t->priority ||
            t2->secret_misses != t->secret_misses || strcmp(t2->concurrency.key, t->concurrency.key) ||
            t2->concurrency.limit != t->concurrency.limit || strcmp(t2->rate.key, t->rate.key) ||
            t2->rate.per_s != t->rate.per_s || t2->rate.burst != t->rate.burst ||
            !(t->secrets ? t2->secrets && json_equal(t2->secrets, t->secrets) : !t2->secrets))
            abort();
        char *enc2 = sf_task_encode(t2);
        if (strcmp(enc, enc2)) abort();
        free(enc);
        free(enc2);
        sf_task_free(t2);
        sf_task_free(t);
    } else if (!err[0]) {
        abort();
    }
    err[0] = '\0';
    struct sf_result *r = sf_result_decode((const char *)data, size, err, sizeof(err));
    if (r) {
        char *enc = sf_result_encode(r);
        struct sf_result *r2 = sf_result_decode(enc, strlen(enc), err, sizeof(err));
        if (!r2 || r2->status != r->status || strcmp(r2->task_id, r->task_id)) abort();
        free(enc);
        sf_result_free(r2);
        sf_result_free(r);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
