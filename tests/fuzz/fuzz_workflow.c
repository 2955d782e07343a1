/* libFuzzer target: the workflow parser/validator must never crash, leak or
 * accept a document it then cannot order. Files are taken as inline
 * contents (base_dir NULL), so no disk I/O happens. */
#include <stdint.h>
#include <stdlib.h>

#include "workflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sf_workflow *wf = NULL;
    struct sf_buf errs = {0};
    int rc = sf_workflow_parse((const char *)data, size, "fuzz.json", NULL, &wf, &errs);
    if (rc == 0) {
        /* A valid workflow has a complete topological order. */
        if (!wf->order || wf->n_steps == 0) abort();
        for (size_t i = 0; i < wf->n_steps; i++)
            if (wf->order[i] >= wf->n_steps) abort();
        if (errs.len) abort();
    } else if (!errs.len) {
        abort();                    /* every rejection must say why */
    }
    sf_workflow_free(wf);
    sf_buf_free(&errs);
    return 0;
}
