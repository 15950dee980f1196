/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's health counters, listed once. BPF (.bss array), the agent
 * (JSON line, human line, protobuf map), the wire (AgentHealth.counters,
 * keyed by name) and the collector (stallwatch_agent_<name>_total) all
 * iterate this list, as the OpenTelemetry profiler's metrics.h does:
 * a new counter is one line here, plus the code that counts it.
 *
 * Included by BPF programs too: macros and an enum only above the guard.
 */
#ifndef SW_HEALTH_H
#define SW_HEALTH_H

/* X(name, help). Every counter is cumulative since the agent started, so a
 * lost batch loses nothing here. */
#define SW_HEALTH_COUNTERS(X)                                                                       \
	X(ringbuf_drops, "BPF events lost because the ring buffer was full")                        \
	X(thread_map_full, "Loop threads that could not be tracked (BPF thread map full)")         \
	X(failed_reads, "Failed reads of BPF maps, /proc or user memory")                           \
	X(lost_events, "Events lost for another reason (batch full, out of memory, unknown type)") \
	X(stream_dropped_batches, "Batches the agent evicted while the collector was away")         \
	X(stream_dropped_bytes, "Bytes of the batches the agent evicted")                           \
	X(stream_dropped_incidents, "Final incidents in the batches the agent evicted")             \
	X(reconnects, "Agent reconnections to the collector")                                       \
	X(batches_sent, "Batches the agent handed to its socket, resent ones again")                \
	X(batches_resent, "Batches written again after a reconnect, their ack not received")       \
	X(batches_acked, "Batches the collector acknowledged as applied")                           \
	X(syscalls_dropped, "Syscalls of a busy stretch left out of its table (full: the shortest kinds give way)") \
	X(stack_samples_lost, "Stack samples lost (ring buffer full, sleep slot reused)")           \
	X(stack_copy_failed, "Stack samples whose registers or user stack could not be copied")     \
	X(unwind_failed, "Stack samples the agent could not unwind past their first frame")         \
	X(py_frames_failed, "Python stack reads that gave no frames (chain changed, bad memory, unsupported)") \
	X(gil_map_full, "GIL waits not counted: the BPF GIL thread or holder map was full")  \
	X(gil_holder_unknown, "GIL holder samples whose thread could not be named")            \
	X(gil_samples_late, "GIL holder samples taken over a period late (the agent short of CPU: hold shares less sure)") \
	X(log_suppressed, "Log lines the agent did not write: over 20 a second from one place in its code")

enum sw_health_id {
#define SW_HEALTH_ENUM(name, help) SW_HEALTH_##name,
	SW_HEALTH_COUNTERS(SW_HEALTH_ENUM)
#undef SW_HEALTH_ENUM
	SW_HEALTH__COUNT
};

#ifndef __bpf__
#include <stddef.h>
#include <stdint.h>

struct sw_health {
	uint64_t v[SW_HEALTH__COUNT];
};

/* Name (JSON key, protobuf map key, metric infix) and help of a counter. */
extern const char *const sw_health_names[SW_HEALTH__COUNT];
extern const char *const sw_health_help[SW_HEALTH__COUNT];

/* The id of a name, or -1 for a name this build does not know (a newer
 * agent's counter, which the collector cannot name and leaves out). */
int sw_health_id(const char *name);
#endif

#endif /* SW_HEALTH_H */
