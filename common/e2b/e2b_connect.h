/* common/e2b/e2b_connect.h: the Connect protocol's streaming envelope and the
 * envd process events carried in it (application/connect+json), both ways.
 *
 * An envelope is flags:u8, length:u32 big-endian, then 'length' bytes of
 * JSON. Flag 0x02 marks the end-of-stream message ({} or {"error":{...}}).
 * The reader is I/O-free (like hiredis' redisReader): feed it whatever bytes
 * arrived, pull whole frames out; frames split across or merged within reads
 * are handled, a frame longer than the reader's cap is a protocol error.
 * Event parsing follows proto3 JSON: zero values may be absent (exitCode 0),
 * bytes are base64, snake_case names are accepted beside lowerCamelCase.
 * Thread: no shared state; one reader per stream. */
#ifndef SF_E2B_CONNECT_H
#define SF_E2B_CONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "util.h"

#define SF_E2B_FLAG_COMPRESSED 0x01
#define SF_E2B_FLAG_END 0x02
#define SF_E2B_FRAME_MAX (16u << 20)      /* default cap of one message */

/* Append one envelope holding 'len' bytes of 'msg' to 'out'. */
void sf_e2b_frame(struct sf_buf *out, uint8_t flags, const void *msg, size_t len);
/* Append one envelope holding the compact JSON of 'j' (borrowed). */
void sf_e2b_frame_json(struct sf_buf *out, uint8_t flags, const json_t *j);

struct sf_e2b_reader {
    struct sf_buf buf;     /* bytes fed and not yet consumed, from 'off' */
    size_t off;
    size_t max_frame;      /* 0: SF_E2B_FRAME_MAX */
};

/* Copy 'len' bytes into the reader. */
void sf_e2b_reader_feed(struct sf_e2b_reader *r, const void *data, size_t len);
/* Take the next whole frame: 1 with flags, msg and len set (msg points into
 * the reader, valid until the next feed or next call), 0 when more bytes are
 * needed, -EPROTO for a frame over the cap or a compressed frame (never
 * negotiated). */
int sf_e2b_reader_next(struct sf_e2b_reader *r, uint8_t *flags, const char **msg, size_t *len);
/* Bytes fed but not yet returned as frames (a partial frame at stream end
 * means the stream was cut). */
size_t sf_e2b_reader_pending(const struct sf_e2b_reader *r);
void sf_e2b_reader_free(struct sf_e2b_reader *r);

/* --- process events (process.proto ProcessEvent inside StartResponse) --- */

enum sf_e2b_event_kind {
    SF_E2B_EV_START = 1,
    SF_E2B_EV_DATA,
    SF_E2B_EV_END,
    SF_E2B_EV_KEEPALIVE,
};

enum sf_e2b_stream { SF_E2B_STDOUT = 1, SF_E2B_STDERR, SF_E2B_PTY };

struct sf_e2b_event {
    enum sf_e2b_event_kind kind;
    uint32_t pid;                  /* START */
    enum sf_e2b_stream stream;     /* DATA */
    char *data;                    /* DATA: decoded bytes, malloc'd, NUL-terminated */
    size_t len;
    int exit_code;                 /* END: absent means 0 */
    bool exited;                   /* END: false when killed by a signal */
    char status[128];              /* END: "exit status 1", "signal: killed" */
    char error[256];               /* END: present only on failure */
};

/* Parse one data frame's JSON ({"event":{...}}). 0, or -EPROTO with a reason
 * in err. Free ev->data with sf_e2b_event_clear. */
int sf_e2b_event_parse(const char *msg, size_t len, struct sf_e2b_event *ev, char *err,
                       size_t errlen);
void sf_e2b_event_clear(struct sf_e2b_event *ev);

/* Parse an end-of-stream message. 0 when it carries no error; -EIO when it
 * carries {"error":{"code","message"}} (copied to code/msg); -EPROTO when
 * it is not JSON. */
int sf_e2b_end_parse(const char *msg, size_t len, char *code, size_t codelen, char *text,
                     size_t textlen);

/* Server side: append one framed event. */
void sf_e2b_put_start(struct sf_buf *out, uint32_t pid);
void sf_e2b_put_data(struct sf_buf *out, enum sf_e2b_stream stream, const void *data, size_t len);
/* As envd: exitCode omitted when 0, exited omitted when false, error only
 * when given. */
void sf_e2b_put_end(struct sf_buf *out, int exit_code, bool exited, const char *status,
                    const char *error);
void sf_e2b_put_keepalive(struct sf_buf *out);
/* End of stream; code NULL means success ({}). */
void sf_e2b_put_trailer(struct sf_buf *out, const char *code, const char *text);

/* Base64 decode as protojson accepts it: standard or URL-safe alphabet,
 * padded or not. 0 or -EINVAL; *out malloc'd, NUL-terminated. */
int sf_e2b_b64_decode(const char *s, size_t slen, char **out, size_t *outlen);

#endif
