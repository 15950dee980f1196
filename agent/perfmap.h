/* SPDX-License-Identifier: Apache-2.0 */
/*
 * perf maps: the "START SIZE name" lines (hex, no 0x) that node writes to
 * /tmp/perf-PID.map with --perf-basic-prof or
 * --perf-basic-prof-only-functions, one per JIT-compiled function, for
 * profilers to name JIT code (tools/perf/Documentation/jit-interface.txt).
 * The file only grows while the process runs; a later entry for the same
 * address (code moved or recompiled) wins.
 */
#ifndef SW_PERFMAP_H
#define SW_PERFMAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sw_perfmap;

/* path: the file as the agent sees it (/proc/PID/root/tmp/perf-NSPID.map). */
struct sw_perfmap *sw_perfmap__new(const char *path);
void sw_perfmap__free(struct sw_perfmap *m);

/* Read what was appended since the last call (the whole file the first
 * time). 0; -ENOENT when the file does not exist; -errno. Lines that do not
 * parse are counted (sw_perfmap__bad_lines), not fatal. */
int sw_perfmap__refresh(struct sw_perfmap *m);
/* Parse lines from f (tests). */
int sw_perfmap__load_stream(struct sw_perfmap *m, FILE *f);

/* The name of the function holding pc, or NULL. */
const char *sw_perfmap__lookup(struct sw_perfmap *m, uint64_t pc);
size_t sw_perfmap__entries(const struct sw_perfmap *m);
uint64_t sw_perfmap__bad_lines(const struct sw_perfmap *m);

#endif
