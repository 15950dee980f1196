/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The diagnosis (diag.h) on the wire (Incident.stacks, top_frames, syscalls):
 * built by the agent's protobuf sink, read back by the collector, one place
 * for both directions so the two cannot drift.
 */
#ifndef SW_DIAG_PROTO_H
#define SW_DIAG_PROTO_H

#include "diag.h"
#include "stallwatch.pb-c.h"

/* Fill m's diagnosis fields (heap copies). 0, or -ENOMEM with m's diagnosis
 * fields freed again. st and sys may be NULL. */
int sw_diag_to_proto(Stallwatch__V1__Incident *m, const struct sw_diag_stacks *st,
		     const struct sw_diag_syscalls *sys);
/* Free what sw_diag_to_proto allocated (not m itself). */
void sw_diag_proto_free(Stallwatch__V1__Incident *m);

/* View m's diagnosis as diag.h structs; strings point into m (or are
 * copied into sys's fixed fields), cut at the diag.h bounds. Returns the
 * pointers to pass on: NULL when m carries none. */
const struct sw_diag_stacks *sw_diag_from_proto_stacks(const Stallwatch__V1__Incident *m,
						       struct sw_diag_stacks *st);
const struct sw_diag_syscalls *sw_diag_from_proto_syscalls(const Stallwatch__V1__Incident *m,
							   struct sw_diag_syscalls *sys);

#endif
