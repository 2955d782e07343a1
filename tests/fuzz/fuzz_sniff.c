/* libFuzzer: the first bytes of a sandbox's connection (sniff.h) and the DNS
 * messages of its resolver (dnsmsg.h) — both written by hostile code. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dnsmsg.h"
#include "sniff.h"

static void each(void *arg, uint32_t v4, uint32_t ttl)
{
    (void)arg; (void)v4; (void)ttl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256];
    const char *proto;
    sf_sniff_name(data, size, name, sizeof(name), &proto);
    struct sf_dns_q q;
    if (sf_dns_question(data, size, &q) == 0) {
        uint8_t out[4096];
        sf_dns_reply(data, &q, 5, out, sizeof(out));
        sf_dns_answer(data, size, &q, each, NULL);
        sf_dns_query(q.id, q.name, q.qtype, out, sizeof(out));
    }
    return 0;
}
