/* sbx_mount: the three ways a sandbox's root is cut (sbx_mount.h). The
 * image holds the read-only part and a procfs to make the kernel's
 * "fully visible" check pass; a sandbox on an image touches no host path
 * and mounts only what is its own; ro_binds that would be hidden under a
 * sandbox's own mounts keep it off images. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sbx_mount.h"

static struct sf_sbx_mount_plan build(const struct sf_sandbox_opts *o, enum sf_sbx_plan_part part)
{
    struct sf_sbx_mount_plan p;
    char err[256] = "";
    if (sf_sbx_mount_plan_build(&p, o, 64, true, part, err, sizeof(err)) < 0)
        fail_msg("plan: %s", err);
    return p;
}

/* Index of the first op of 'kind' on 'dst' (NULL: any), or -1. */
static int find(const struct sf_sbx_mount_plan *p, enum sf_sbx_mop_kind kind, const char *dst)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->ops[i].kind == kind && (!dst || !strcmp(p->ops[i].dst, dst))) return (int)i;
    return -1;
}

static int count(const struct sf_sbx_mount_plan *p, enum sf_sbx_mop_kind kind)
{
    int n = 0;
    for (size_t i = 0; i < p->n; i++) n += p->ops[i].kind == kind;
    return n;
}

static bool has_data(const struct sf_sbx_mount_plan *p, const char *needle)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->ops[i].data && strstr(p->ops[i].data, needle)) return true;
    return false;
}

static void the_full_plan_builds_everything_and_pivots(void **state)
{
    (void)state;
    struct sf_sandbox_opts o = { 0 };
    struct sf_sbx_mount_plan p = build(&o, SF_SBX_PLAN_FULL);
    assert_int_equal(p.ops[0].kind, SF_SBX_MOP_PRIVATE);
    assert_true(find(&p, SF_SBX_MOP_PIVOT, NULL) >= 0);
    assert_int_equal(p.ops[p.n - 1].kind, SF_SBX_MOP_RDONLY);        /* the root, last */
    assert_string_equal(p.ops[p.n - 1].dst, "/");
    assert_true(find(&p, SF_SBX_MOP_DEVPTS, NULL) >= 0);
    assert_true(has_data(&p, "size=64m"));                          /* the writable tmpfs */
    assert_int_equal(count(&p, SF_SBX_MOP_UMOUNT), 0);              /* the pivot's detach does it */
    sf_sbx_mount_plan_free(&p);
}

static void the_image_is_the_read_only_part_with_a_procfs(void **state)
{
    (void)state;
    struct sf_sandbox_opts o = { 0 };
    struct sf_sbx_mount_plan p = build(&o, SF_SBX_PLAN_IMAGE);
    int pivot = find(&p, SF_SBX_MOP_PIVOT, NULL);
    assert_true(pivot >= 0);
    assert_true(find(&p, SF_SBX_MOP_PROC, NULL) >= 0 && find(&p, SF_SBX_MOP_PROC, NULL) < pivot);
    char usr[128];
    snprintf(usr, sizeof(usr), "%s/usr", p.ops[pivot].dst);
    assert_true(find(&p, SF_SBX_MOP_BIND, usr) >= 0);               /* host /usr */
    assert_int_equal(count(&p, SF_SBX_MOP_DEVPTS), 0);              /* each sandbox's own */
    assert_false(has_data(&p, "size=64m"));                         /* no writable tmpfs */
    char dev[128];
    snprintf(dev, sizeof(dev), "%s/dev", p.ops[pivot].dst);
    assert_true(find(&p, SF_SBX_MOP_RDONLY, dev) >= 0);
    assert_string_equal(p.ops[p.n - 1].dst, "/");
    assert_int_equal(p.ops[p.n - 1].kind, SF_SBX_MOP_RDONLY);
    sf_sbx_mount_plan_free(&p);
}

static void a_sandbox_on_an_image_mounts_only_its_own(void **state)
{
    (void)state;
    struct sf_sandbox_opts o = { 0 };
    struct sf_sbx_mount_plan p = build(&o, SF_SBX_PLAN_SANDBOX);
    assert_int_equal(count(&p, SF_SBX_MOP_PIVOT), 0);
    assert_int_equal(count(&p, SF_SBX_MOP_PRIVATE), 0);
    /* The writable tmpfs lies on /proc for a moment, is detached, then
     * the sandbox's own procfs goes there. */
    assert_int_equal(p.ops[0].kind, SF_SBX_MOP_TMPFS);
    assert_string_equal(p.ops[0].dst, "/proc");
    assert_true(has_data(&p, "size=64m"));
    int um = find(&p, SF_SBX_MOP_UMOUNT, "/proc"), proc = find(&p, SF_SBX_MOP_PROC, "/proc");
    assert_true(um > 0 && proc > um);
    assert_true(find(&p, SF_SBX_MOP_BIND, "/workspace") < um);
    assert_true(find(&p, SF_SBX_MOP_BIND, "/dev/shm") < um);
    assert_true(find(&p, SF_SBX_MOP_DEVPTS, "/dev/pts") >= 0);
    assert_true(find(&p, SF_SBX_MOP_CHOWN, "/proc/home/user") >= 0);
    /* No host path is touched: every source is the sandbox's own. */
    for (size_t i = 0; i < p.n; i++) {
        const char *s = p.ops[i].src;
        if (s && strncmp(s, "/proc/", 6) && strcmp(s, "/dev/null"))
            fail_msg("step %zu binds %s", i, s);
    }
    sf_sbx_mount_plan_free(&p);
}

static void binds_under_a_sandbox_own_mount_keep_it_off_images(void **state)
{
    (void)state;
    static const char *const off[] = { "/tmp/x", "/tmp", "/workspace/data", "/home/user/k",
                                       "/proc/x", "/dev/x" };
    static const char *const on[] = { "/data", "/opt/models", "/tmpdata", "/run/sandfleet/ca.crt",
                                      "/etc/ssl/certs/ca-certificates.crt" };
    struct sf_bind b = { "/usr", NULL };
    struct sf_sandbox_opts o = { .ro_binds = &b, .n_ro_binds = 1 };
    assert_true(sf_sbx_mount_image_fits(&(struct sf_sandbox_opts){ 0 }));
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        b.sandbox_path = off[i];
        if (sf_sbx_mount_image_fits(&o)) fail_msg("%s fits an image", off[i]);
    }
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        b.sandbox_path = on[i];
        if (!sf_sbx_mount_image_fits(&o)) fail_msg("%s does not fit an image", on[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_full_plan_builds_everything_and_pivots),
        cmocka_unit_test(the_image_is_the_read_only_part_with_a_procfs),
        cmocka_unit_test(a_sandbox_on_an_image_mounts_only_its_own),
        cmocka_unit_test(binds_under_a_sandbox_own_mount_keep_it_off_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
