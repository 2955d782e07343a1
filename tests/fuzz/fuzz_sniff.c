/* libFuzzer: the first bytes of a sandbox's connection (sniff.h), the DNS
 * messages of its resolver (dnsmsg.h) and the HTTP heads of its servers
 * behind get_host (httphead.h) — all written by hostile code. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dnsmsg.h"
#include "httphead.h"
#include "sniff.h"

static void each(void *arg, uint32_t v4, uint32_t ttl)
{
    (void)v4; (void)ttl;
    if (arg) ++*(int *)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256];
    const char *proto;
    sf_sniff_name(data, size, name, sizeof(name), &proto);
    struct sf_httphead h;
    if (sf_httphead_parse((const char *)data, size, &h) > 0) {
        sf_httphead_get(&h, "Content-Length");
        sf_httphead_has_token(&h, "Transfer-Encoding", "chunked");
    }
    struct sf_dns_q q;
    if (sf_dns_question(data, size, &q) == 0) {
        uint8_t out[4096];
        sf_dns_reply(data, &q, 5, out, sizeof(out));
        /* An answer made here must read back as one A record. */
        size_t n = sf_dns_reply_a(data, &q, 0x647ffffeu, 60, out, sizeof(out));
        int got = 0;
        if (n && q.qtype == 1 && q.qclass == 1 && (sf_dns_answer(out, n, &q, each, &got) != 0 || got != 1))
            __builtin_trap();
        sf_dns_answer(data, size, &q, each, NULL);
        sf_dns_query(q.id, q.name, q.qtype, out, sizeof(out));
    }
    return 0;
}
