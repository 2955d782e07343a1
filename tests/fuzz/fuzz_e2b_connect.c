/* libFuzzer target: the Connect envelope reader and envd event parsers
 * (outside input: whatever an E2B server, or something pretending to be
 * one, streams back). The first byte picks how the rest is split into
 * reads; every frame is parsed as an event or a trailer. A parsed data
 * event must survive re-encoding; a refused one must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2b_connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(uint8_t flags, const char *msg, size_t len)
{
    char why[256] = "", code[64], text[256];
    if (flags & SF_E2B_FLAG_END) {
        sf_e2b_end_parse(msg, len, code, sizeof(code), text, sizeof(text));
        return;
    }
    struct sf_e2b_event ev;
    if (sf_e2b_event_parse(msg, len, &ev, why, sizeof(why)) < 0) {
        if (!why[0]) abort();
        return;
    }
    if (ev.kind == SF_E2B_EV_DATA) {
        struct sf_buf b = { 0 };
        struct sf_e2b_event ev2;
        sf_e2b_put_data(&b, ev.stream, ev.data, ev.len);
        if (sf_e2b_event_parse(b.data + 5, b.len - 5, &ev2, why, sizeof(why)) < 0) abort();
        if (ev2.len != ev.len || (ev.len && memcmp(ev2.data, ev.data, ev.len))) abort();
        sf_e2b_event_clear(&ev2);
        sf_buf_free(&b);
    }
    sf_e2b_event_clear(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)data[0] % 16 + 1;
    struct sf_e2b_reader r = { .max_frame = 1 << 20 };
    data++;
    size--;
    for (size_t off = 0; off < size; off += step) {
        sf_e2b_reader_feed(&r, data + off, off + step <= size ? step : size - off);
        uint8_t flags;
        const char *msg;
        size_t len;
        int rc;
        while ((rc = sf_e2b_reader_next(&r, &flags, &msg, &len)) == 1) check_frame(flags, msg, len);
        if (rc < 0) break;
    }
    char *out;
    size_t n;
    if (sf_e2b_b64_decode((const char *)data, size, &out, &n) == 0) free(out);
    sf_e2b_reader_free(&r);
    return 0;
}
