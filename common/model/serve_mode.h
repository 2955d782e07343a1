/* common/model/serve_mode.h: how a step's agent takes its inputs — the workflow
 * field `serve` and the task wire field of the same name.
 *   (absent)  cold: a fresh sandbox per task, the input on stdin and in
 *             /tmp/input.json, the output is all of stdout (docs/workflows.md)
 *   "lines"   warm: the agent reads one JSON input per line on stdin and
 *             writes one JSON output per line; whoever runs the step keeps it
 *             running and feeds it the step's tasks (common/exec/warm.h)
 * Thread: reentrant. */
#ifndef SF_SERVE_MODE_H
#define SF_SERVE_MODE_H

enum sf_serve {
    SF_SERVE_NONE = 0,
    SF_SERVE_LINES,
};

/* "lines" for SF_SERVE_LINES, NULL for SF_SERVE_NONE. */
const char *sf_serve_name(enum sf_serve s);
/* The mode named 'name', or -1 when it is not one. */
int sf_serve_parse(const char *name);

#endif
