// SPDX-License-Identifier: Apache-2.0
/* The collector's store: merging deltas, interval gauges, incidents, caps,
 * the Hello rule, and the hashed lookups of every store under churn. */
#include "procrules.h"
#include "store.h"
#include "test_collector_helpers.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>

#define NOW (1000ull * 1000000000ull)

static struct sw_store *s;

static void new_store(size_t max_loops, size_t max_incidents)
{
	struct sw_store_opts o = {.max_loops = max_loops,
				  .max_incidents = max_incidents,
				  .expire_ns = 60ull * 1000000000ull};

	s = sw_store__new(&o);
	cr_assert_not_null(s);
	cr_assert_eq(sw_store__agent_up(s, "h1:42", NULL, NOW), 0);
}

static void teardown(void)
{
	sw_store__free(s);
	s = NULL;
}

static void apply_loops(Stallwatch__V1__LoopSummary **ls, size_t n, uint64_t seq)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;

	b.seq = seq;
	b.loops = ls;
	b.n_loops = n;
	cr_assert_eq(sw_store__apply(s, "h1:42", &b, NOW), 0);
}

static void apply_incident(Stallwatch__V1__Incident *in)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Incident *p[1] = {in};

	b.incidents = p;
	b.n_incidents = 1;
	cr_assert_eq(sw_store__apply(s, "h1:42", &b, NOW), 0);
}

/* within the histogram's bucket error (<= 1.6 %) */
#define assert_close(v, want)                                                                      \
	cr_assert(fabs((double)(v) - (double)(want)) <= 0.017 * (double)(want) + 1,                \
		  "%s = %.0f, want %.0f", #v, (double)(v), (double)(want))

TestSuite(store, .fini = teardown);

Test(store, merges_deltas_and_computes_interval_gauges)
{
	const struct sw_loop_view *l;
	struct t_loop a, b;
	Stallwatch__V1__LoopSummary *p[1];

	new_store(16, 16);
	/* interval 1: 100 iterations of 1 ms */
	t_loop_init(&a, 100, 100, "node");
	t_loop_add(&a, 1 * MS, 100);
	a.ls.idle_ns = 900 * MS; /* busy 100 ms -> utilization 0.1 */
	p[0] = &a.ls;
	apply_loops(p, 1, 1);

	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 1);
	l = sw_store__loop(s, 0);
	cr_assert_eq(l->hist.total, 100);
	cr_assert_eq(l->interval_iterations, 100);
	assert_close(l->p50_ns, 1 * MS);
	assert_close(l->p99_ns, 1 * MS);
	cr_assert_eq(l->max_ns, (double)(1 * MS), "max is LoopSummary.max_busy_ns exactly");
	cr_assert(l->stddev_ns < 1.0, "one bucket: no spread");
	cr_assert(fabs(l->utilization - 0.1) < 1e-9);
	sw_store__unlock(s);

	/* interval 2: 90 x 1 ms, 9 x 10 ms, 1 x 100 ms */
	t_loop_init(&b, 100, 100, "node");
	t_loop_add(&b, 1 * MS, 90);
	t_loop_add(&b, 10 * MS, 9);
	t_loop_add(&b, 100 * MS, 1);
	b.ls.idle_ns = b.ls.busy_ns; /* utilization 0.5 */
	p[0] = &b.ls;
	apply_loops(p, 1, 2);

	sw_store__lock(s);
	l = sw_store__loop(s, 0);
	/* cumulative */
	cr_assert_eq(l->hist.total, 200);
	cr_assert_eq(l->iterations, 200);
	cr_assert_eq(l->busy_ns, 100 * MS + 280 * MS);
	cr_assert_eq(l->idle_ns, 900 * MS + 280 * MS);
	cr_assert_eq(l->hist.counts[sw_hist_bucket(1 * MS)], 190);
	cr_assert_eq(l->hist.max_ns, 100 * MS);
	/* gauges of the last interval only */
	assert_close(l->min_ns, 1 * MS);
	assert_close(l->p50_ns, 1 * MS);
	assert_close(l->p90_ns, 1 * MS);
	assert_close(l->p99_ns, 10 * MS);
	cr_assert_eq(l->max_ns, (double)(100 * MS));
	assert_close(l->mean_ns, 2.8 * MS);
	/* sqrt(E[x^2] - mean^2) = sqrt(109.9 - 7.84) ms */
	cr_assert(fabs(l->stddev_ns - 10.1025 * MS) < 0.03 * 10.1025 * MS, "stddev %.0f",
		  l->stddev_ns);
	cr_assert(fabs(l->utilization - 0.5) < 1e-9);
	assert_close(l->hist_sum_ns, 100 * MS + 280 * MS);
	sw_store__unlock(s);
}

Test(store, empty_interval_zeroes_gauges_but_keeps_totals)
{
	const struct sw_loop_view *l;
	struct t_loop a, b;
	Stallwatch__V1__LoopSummary *p[1] = {&a.ls};

	new_store(16, 16);
	t_loop_init(&a, 7, 7, "python");
	t_loop_add(&a, 5 * MS, 10);
	apply_loops(p, 1, 0);
	t_loop_init(&b, 7, 7, "python");
	p[0] = &b.ls;
	apply_loops(p, 1, 0);
	sw_store__lock(s);
	l = sw_store__loop(s, 0);
	cr_assert_eq(l->hist.total, 10);
	cr_assert_eq(l->interval_iterations, 0, "what tells export to leave the gauges out");
	cr_assert_eq(l->p99_ns, 0);
	cr_assert_eq(l->max_ns, 0);
	cr_assert_eq(l->utilization, 0);
	sw_store__unlock(s);
}

Test(store, labels_are_bounded_and_taken_from_process_info)
{
	Stallwatch__V1__Batch bt = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT;
	Stallwatch__V1__ProcessInfo *pp[1] = {&pi};
	const struct sw_loop_view *l;
	struct t_loop a;
	Stallwatch__V1__LoopSummary *p[1] = {&a.ls};

	new_store(16, 16);
	pi.pid = 9;
	pi.runtime = "python";
	pi.comm = "gunicorn";
	bt.processes = pp;
	bt.n_processes = 1;
	cr_assert_eq(sw_store__apply(s, "h1:42", &bt, NOW), 0);

	t_loop_init(&a, 9, 10, "ruby");
	a.ls.role = "boss";
	apply_loops(p, 1, 0);
	sw_store__lock(s);
	l = sw_store__loop(s, 0);
	cr_assert_str_eq(l->comm, "gunicorn");
	cr_assert_str_eq(l->runtime, "python", "ProcessInfo's runtime wins");
	cr_assert_str_eq(l->role, "loop", "unknown roles fold into 'loop'");
	cr_assert_str_eq(l->host, "h1:42", "no Hello yet: the id names the host");
	sw_store__unlock(s);
}

Test(store, incident_ongoing_then_final_is_updated_in_place)
{
	const struct sw_incident_view *in;
	const struct sw_loop_view *l;
	Stallwatch__V1__Incident inc;
	size_t cpu = sw_store__pattern_index("node.cpu_bound_callback");

	new_store(16, 16);
	t_incident(&inc, 100, 100, 5000 * MS, 300 * MS, 1);
	apply_incident(&inc);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nincidents(s), 1);
	in = sw_store__incident(s, 0);
	cr_assert(in->ongoing);
	cr_assert_str_eq(in->pattern, "node.cpu_bound_callback", "re-derived by the rules, not the agent's");
	l = sw_store__loop(s, 0);
	cr_assert_eq(l->ongoing_ns, 300 * MS);
	cr_assert_eq(l->blocked[cpu], 0, "not counted until it ends");
	sw_store__unlock(s);

	t_incident(&inc, 100, 100, 5000 * MS, 800 * MS, 1);
	apply_incident(&inc);
	t_incident(&inc, 100, 100, 5000 * MS, 1200 * MS, 0);
	apply_incident(&inc);
	/* a repeated final copy must not count twice */
	apply_incident(&inc);

	sw_store__lock(s);
	cr_assert_eq(sw_store__nincidents(s), 1, "one incident, updated in place");
	in = sw_store__incident(s, 0);
	cr_assert_not(in->ongoing);
	cr_assert_eq(in->duration_ns, 1200 * MS);
	cr_assert_str_not_empty(in->advice);
	l = sw_store__loop(s, 0);
	cr_assert_eq(l->ongoing_ns, 0);
	cr_assert_eq(l->blocked[cpu], 1);
	cr_assert_eq(l->blocked_ns[cpu], 1200 * MS);
	sw_store__unlock(s);
}

Test(store, incident_ring_is_bounded_newest_first)
{
	struct sw_store_counters c;
	Stallwatch__V1__Incident inc;

	new_store(16, 3);
	for (int i = 1; i <= 5; i++) {
		t_incident(&inc, 100, 100, (uint64_t)i * 1000 * MS, 200 * MS, 0);
		apply_incident(&inc);
	}
	sw_store__lock(s);
	cr_assert_eq(sw_store__nincidents(s), 3);
	cr_assert_eq(sw_store__incident(s, 0)->start_ns, 5000 * MS);
	cr_assert_eq(sw_store__incident(s, 2)->start_ns, 3000 * MS);
	sw_store__counters(s, &c);
	cr_assert_eq(c.incidents_dropped, 2);
	/* evicted incidents still counted in the loop's counters */
	cr_assert_eq(sw_store__loop(s, 0)->blocked[sw_store__pattern_index("node.cpu_bound_callback")], 5);
	sw_store__unlock(s);
}

Test(store, loop_cap_counts_refusals)
{
	struct sw_store_counters c;
	struct t_loop a[3];
	Stallwatch__V1__LoopSummary *p[3];

	new_store(2, 16);
	for (int i = 0; i < 3; i++) {
		t_loop_init(&a[i], 100, 100 + i, "node");
		t_loop_add(&a[i], MS, 1);
		p[i] = &a[i].ls;
	}
	apply_loops(p, 3, 0);
	apply_loops(p, 3, 0);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 2);
	sw_store__counters(s, &c);
	cr_assert_eq(c.series_dropped, 2, "refused once per summary that found no room");
	sw_store__unlock(s);
}

Test(store, seq_gaps_are_counted)
{
	struct sw_store_counters c;

	new_store(4, 4);
	apply_loops(NULL, 0, 1);
	apply_loops(NULL, 0, 2);
	apply_loops(NULL, 0, 5); /* 3 and 4 evicted by the agent */
	apply_loops(NULL, 0, 6);
	sw_store__counters(s, &c);
	cr_assert_eq(c.batches_gap, 2);
}

Test(store, exited_process_and_gone_agent_expire)
{
	Stallwatch__V1__Batch bt = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT;
	Stallwatch__V1__ProcessInfo *pp[1] = {&pi};
	struct t_loop a, b;
	Stallwatch__V1__LoopSummary *p[2] = {&a.ls, &b.ls};
	uint64_t exp = 60ull * 1000000000ull;

	new_store(16, 16);
	t_loop_init(&a, 100, 100, "node");
	t_loop_init(&b, 200, 200, "node");
	apply_loops(p, 2, 0);
	pi.pid = 100;
	pi.exited = 1;
	bt.processes = pp;
	bt.n_processes = 1;
	cr_assert_eq(sw_store__apply(s, "h1:42", &bt, NOW), 0);

	sw_store__tick(s, NOW + exp - 1);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 2, "stale series stay for the expiry period");
	sw_store__unlock(s);
	sw_store__tick(s, NOW + exp);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 1);
	cr_assert_eq(sw_store__loop(s, 0)->pid, 200);
	sw_store__unlock(s);

	sw_store__agent_down(s, "h1:42", NOW + exp);
	sw_store__lock(s);
	cr_assert_not(sw_store__agent(s, 0)->up);
	sw_store__unlock(s);
	sw_store__tick(s, NOW + 2 * exp);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 0);
	cr_assert_eq(sw_store__nagents(s), 0);
	sw_store__unlock(s);
	cr_assert_eq(sw_store__apply(s, "h1:42", &bt, NOW), -ENOENT);
}

Test(store, reconnect_revives_stale_series)
{
	struct t_loop a;
	Stallwatch__V1__LoopSummary *p[1] = {&a.ls};
	uint64_t exp = 60ull * 1000000000ull;

	new_store(16, 16);
	t_loop_init(&a, 100, 100, "node");
	apply_loops(p, 1, 0);
	sw_store__agent_down(s, "h1:42", NOW);
	cr_assert_eq(sw_store__agent_up(s, "h1:42", NULL, NOW + 1), 0);
	sw_store__tick(s, NOW + 2 * exp);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 1);
	cr_assert_eq(sw_store__loop(s, 0)->stale_since_ns, 0);
	sw_store__unlock(s);
}

Test(store, agent_health_keeps_the_latest)
{
	Stallwatch__V1__Batch bt = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__AgentHealth h = STALLWATCH__V1__AGENT_HEALTH__INIT;
	Stallwatch__V1__Hello hello = STALLWATCH__V1__HELLO__INIT;
	Stallwatch__V1__AgentHealth__CountersEntry kv[2], *kvp[2] = {&kv[0], &kv[1]};

	new_store(4, 4);
	stallwatch__v1__agent_health__counters_entry__init(&kv[0]);
	stallwatch__v1__agent_health__counters_entry__init(&kv[1]);
	kv[0].key = "ringbuf_drops";
	kv[1].key = "counter_of_a_newer_agent"; /* left out, not misfiled */
	kv[1].value = 99;
	h.counters = kvp;
	h.n_counters = 2;
	hello.agent_id = "h1:42";
	hello.hostname = "web-1";
	bt.hello = &hello;
	bt.health = &h;
	kv[0].value = 5;
	cr_assert_eq(sw_store__apply(s, "h1:42", &bt, NOW), 0);
	bt.hello = NULL;
	kv[0].value = 7; /* cumulative on the agent */
	cr_assert_eq(sw_store__apply(s, "h1:42", &bt, NOW), 0);
	sw_store__lock(s);
	cr_assert_eq(sw_store__agent(s, 0)->health[SW_HEALTH_ringbuf_drops], 7);
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		if (i != SW_HEALTH_ringbuf_drops)
			cr_assert_eq(sw_store__agent(s, 0)->health[i], 0, "%s", sw_health_names[i]);
	cr_assert_str_eq(sw_store__agent(s, 0)->host, "web-1");
	sw_store__unlock(s);
}

/* ---- the Hello, applied in one place ---- */

static void apply_hello_incident(const char *id, Stallwatch__V1__Hello *h, uint64_t start_ns)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Incident inc, *ip[1] = {&inc};

	t_incident(&inc, 100, 100, start_ns, 200 * MS, 0);
	b.hello = h;
	b.incidents = ip;
	b.n_incidents = 1;
	cr_assert_eq(sw_store__apply(s, id, &b, NOW), 0);
}

Test(store, hello_sets_only_the_fields_it_carries)
{
	Stallwatch__V1__Hello h1 = STALLWATCH__V1__HELLO__INIT, thin = STALLWATCH__V1__HELLO__INIT,
			      h2 = STALLWATCH__V1__HELLO__INIT;
	const uint64_t off1 = 1700000000000000000ull, off2 = 1800000000000000000ull;
	const struct sw_agent_view *a;

	new_store(16, 16);
	h1.agent_id = "h1:42";
	h1.hostname = "web-1";
	h1.version = "0.1.0";
	h1.mono_to_unix_ns = off1;
	cr_assert_eq(sw_store__agent_up(s, "h1:42", &h1, NOW), 0);

	/* a Hello in a batch that sets nothing changes nothing: neither the
	 * host, the version nor the clock offset is erased */
	thin.agent_id = "h1:42";
	apply_hello_incident("h1:42", &thin, 1000 * MS);
	sw_store__lock(s);
	a = sw_store__agent(s, 0);
	cr_assert_str_eq(a->host, "web-1");
	cr_assert_str_eq(a->version, "0.1.0");
	cr_assert_eq(sw_store__incident(s, 0)->start_unix_ns, off1 + 1000 * MS);
	sw_store__unlock(s);

	/* a Hello that does set them wins, in a batch ... */
	h2.hostname = "web-2";
	h2.version = "0.2.0";
	h2.mono_to_unix_ns = off2;
	apply_hello_incident("h1:42", &h2, 2000 * MS);
	sw_store__lock(s);
	cr_assert_str_eq(sw_store__agent(s, 0)->host, "web-2");
	cr_assert_str_eq(sw_store__agent(s, 0)->version, "0.2.0");
	cr_assert_eq(sw_store__incident(s, 0)->start_unix_ns, off2 + 2000 * MS);
	sw_store__unlock(s);

	/* ... and the same rule holds on a new connection: a thin Hello at
	 * agent_up keeps what the agent said before */
	sw_store__agent_down(s, "h1:42", NOW);
	cr_assert_eq(sw_store__agent_up(s, "h1:42", &thin, NOW), 0);
	apply_hello_incident("h1:42", NULL, 3000 * MS);
	sw_store__lock(s);
	cr_assert_str_eq(sw_store__agent(s, 0)->host, "web-2");
	cr_assert_str_eq(sw_store__agent(s, 0)->version, "0.2.0");
	cr_assert_eq(sw_store__incident(s, 0)->start_unix_ns, off2 + 3000 * MS);
	sw_store__unlock(s);
}

/* ---- hashed lookups under churn ---- */

static void apply_as(const char *id, Stallwatch__V1__Batch *b, int want)
{
	cr_assert_eq(sw_store__apply(s, id, b, NOW), want, "apply as %s", id);
}

Test(store, agents_by_id_under_churn)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	uint64_t exp = 60ull * 1000000000ull;
	char id[64], longid[201];

	new_store(16, 16); /* "h1:42" is up */
	for (int i = 1; i < SW_STORE_MAX_AGENTS; i++) {
		snprintf(id, sizeof(id), "agent-%d", i);
		cr_assert_eq(sw_store__agent_up(s, id, NULL, NOW), 0);
	}
	cr_assert_eq(sw_store__agent_up(s, "one-too-many", NULL, NOW), -ENOSPC);
	apply_as("one-too-many", &b, -ENOENT);
	/* a second connection of a known agent is no new entry */
	cr_assert_eq(sw_store__agent_up(s, "agent-7", NULL, NOW), 0);

	/* every odd agent goes away and expires; removal swaps entries around
	 * in the vector, the hash must follow */
	for (int i = 1; i < SW_STORE_MAX_AGENTS; i += 2) {
		snprintf(id, sizeof(id), "agent-%d", i);
		sw_store__agent_down(s, id, NOW);
		if (i == 7)
			sw_store__agent_down(s, id, NOW); /* its second connection */
	}
	sw_store__tick(s, NOW + exp);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nagents(s), SW_STORE_MAX_AGENTS / 2);
	sw_store__unlock(s);
	for (int i = 1; i < SW_STORE_MAX_AGENTS; i++) {
		snprintf(id, sizeof(id), "agent-%d", i);
		apply_as(id, &b, i % 2 ? -ENOENT : 0);
	}
	apply_as("h1:42", &b, 0);

	/* the room is back; an id longer than a label is found by itself */
	memset(longid, 'x', 200);
	longid[200] = '\0';
	cr_assert_eq(sw_store__agent_up(s, longid, NULL, NOW), 0);
	apply_as(longid, &b, 0);
	sw_store__lock(s);
	cr_assert_eq(strlen(sw_store__agent(s, sw_store__nagents(s) - 1)->id), SW_NAME_LEN - 1);
	sw_store__unlock(s);
	for (int i = 1; i < SW_STORE_MAX_AGENTS; i += 2) {
		snprintf(id, sizeof(id), "agent-%d-again", i);
		cr_assert_eq(sw_store__agent_up(s, id, NULL, NOW),
			     i + 2 < SW_STORE_MAX_AGENTS ? 0 : -ENOSPC, "%s", id);
	}
}

/* ProcessInfo of pid on agent id, comm "<tag><pid>" */
static void proc_info(const char *id, uint32_t pid, const char *tag, int exited)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	char comm[16];

	snprintf(comm, sizeof(comm), "%s%u", tag, pid);
	pi.pid = pid;
	pi.runtime = "python";
	pi.comm = comm;
	pi.exited = exited;
	b.processes = pp;
	b.n_processes = 1;
	apply_as(id, &b, 0);
}

static void loop_of(const char *id, uint32_t pid)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

	t_loop_init(&l, pid, pid, "native");
	t_loop_add(&l, MS, 1);
	b.loops = lp;
	b.n_loops = 1;
	apply_as(id, &b, 0);
}

static const struct sw_loop_view *find_loop(const char *agent, uint32_t pid)
{
	for (size_t i = 0; i < sw_store__nloops(s); i++) {
		const struct sw_loop_view *l = sw_store__loop(s, i);

		if (l->pid == pid && strcmp(l->agent, agent) == 0)
			return l;
	}
	return NULL;
}

Test(store, processes_by_agent_and_pid_under_churn)
{
	const struct sw_loop_view *l;
	struct sw_store_counters c;
	uint64_t exp = 60ull * 1000000000ull;
	char want[16];
	const uint32_t n = 200;

	new_store(2 * n, 16);
	cr_assert_eq(sw_store__agent_up(s, "h2:43", NULL, NOW), 0);
	/* the same pids on two agents are two processes */
	for (uint32_t pid = 1; pid <= n; pid++) {
		proc_info("h1:42", pid, "a", 0);
		proc_info("h2:43", pid, "b", 0);
	}
	proc_info("h1:42", n + 1, "z", 0); /* over the cap of 2n */
	sw_store__counters(s, &c);
	cr_assert_eq(c.series_dropped, 1);
	for (uint32_t pid = 1; pid <= n; pid++) {
		loop_of("h1:42", pid);
		loop_of("h2:43", pid);
	}
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 2 * n);
	for (uint32_t pid = 1; pid <= n; pid++) {
		snprintf(want, sizeof(want), "a%u", pid);
		cr_assert_str_eq(find_loop("h1:42", pid)->comm, want);
		cr_assert_str_eq(find_loop("h1:42", pid)->runtime, "python");
		snprintf(want, sizeof(want), "b%u", pid);
		cr_assert_str_eq(find_loop("h2:43", pid)->comm, want);
	}
	sw_store__unlock(s);

	/* every process of h1 exits and expires with its series */
	for (uint32_t pid = 1; pid <= n; pid++)
		proc_info("h1:42", pid, "a", 1);
	sw_store__tick(s, NOW + exp);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), n);
	sw_store__unlock(s);

	/* a lookup after eviction finds nothing: the new series of a reused
	 * pid takes no label from the process that is gone */
	for (uint32_t pid = 1; pid <= n; pid += 3)
		loop_of("h1:42", pid);
	sw_store__lock(s);
	for (uint32_t pid = 1; pid <= n; pid += 3) {
		l = find_loop("h1:42", pid);
		cr_assert_not_null(l);
		cr_assert_str_eq(l->comm, "node", "the thread name, not a%u", pid);
		cr_assert_str_eq(l->runtime, "native");
	}
	sw_store__unlock(s);
	/* and the room is back for new processes */
	for (uint32_t pid = 1; pid <= n; pid++)
		proc_info("h1:42", 1000 + pid, "c", 0);
	sw_store__counters(s, &c);
	cr_assert_eq(c.series_dropped, 1);
}

static void exit_proc(uint32_t pid)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};

	pi.pid = pid;
	pi.exited = 1;
	b.processes = pp;
	b.n_processes = 1;
	apply_as("h1:42", &b, 0);
}

Test(store, series_by_agent_pid_tid_under_churn)
{
	const struct sw_loop_view *l;
	uint64_t exp = 60ull * 1000000000ull;

	/* each round adds 32 series next to the 32 of the round before, then
	 * those expire: the cap of 64 is only ever met if removal works, and
	 * counts must land in the right series after the vector is reshuffled */
	new_store(64, 16);
	for (uint32_t r = 0; r < 20; r++) {
		uint32_t base = 1000 * r, prev = base - 1000;

		for (uint32_t pid = base + 1; pid <= base + 32; pid++) {
			loop_of("h1:42", pid);
			if (pid % 2 == 0)
				loop_of("h1:42", pid);
		}
		sw_store__lock(s);
		cr_assert_eq(sw_store__nloops(s), r ? 64 : 32);
		for (uint32_t pid = base + 1; pid <= base + 32; pid++) {
			l = find_loop("h1:42", pid);
			cr_assert_not_null(l, "pid %u", pid);
			cr_assert_eq(l->iterations, pid % 2 ? 1 : 2, "pid %u", pid);
		}
		sw_store__unlock(s);
		if (!r)
			continue;
		for (uint32_t pid = prev + 1; pid <= prev + 32; pid++)
			exit_proc(pid);
		sw_store__tick(s, NOW + exp);
		sw_store__lock(s);
		cr_assert_eq(sw_store__nloops(s), 32);
		for (uint32_t pid = prev + 1; pid <= prev + 32; pid++)
			cr_assert_null(find_loop("h1:42", pid));
		sw_store__unlock(s);
		/* an expired series comes back empty, not with its old counts */
		if (r == 19) {
			loop_of("h1:42", prev + 2);
			sw_store__lock(s);
			cr_assert_eq(find_loop("h1:42", prev + 2)->iterations, 1);
			sw_store__unlock(s);
		}
	}
}

static void incident_as(const char *id, uint32_t pid, uint64_t start_ms, int ongoing)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Incident inc, *ip[1] = {&inc};

	t_incident(&inc, pid, pid, start_ms * MS, 300 * MS, ongoing);
	b.incidents = ip;
	b.n_incidents = 1;
	apply_as(id, &b, 0);
}

Test(store, incident_ring_eviction_keeps_the_hash)
{
	const struct sw_incident_view *in;
	struct sw_store_counters c;

	new_store(16, 8);
	cr_assert_eq(sw_store__agent_up(s, "h2:43", NULL, NOW), 0);
	/* 8 ongoing blocks fill the ring, 8 more evict them all */
	for (uint64_t k = 0; k < 16; k++)
		incident_as("h1:42", 100, 1000 * k, 1);
	sw_store__counters(s, &c);
	cr_assert_eq(c.incidents_dropped, 8);

	/* the end of an evicted block finds nothing: it is a new entry (over
	 * the oldest, k = 8), not an update of whatever reuses its slot */
	incident_as("h1:42", 100, 3000, 0);
	sw_store__counters(s, &c);
	cr_assert_eq(c.incidents_dropped, 9);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nincidents(s), 8);
	in = sw_store__incident(s, 0);
	cr_assert_eq(in->start_ns, 3000 * MS);
	cr_assert_not(in->ongoing);
	for (size_t i = 1; i < 8; i++) {
		in = sw_store__incident(s, i);
		cr_assert_eq(in->start_ns, (16 - i) * 1000 * MS, "slot %zu", i);
		cr_assert(in->ongoing, "slot %zu was not touched", i);
	}
	sw_store__unlock(s);

	/* the end of one still held updates it in place, evicting nothing; the
	 * same key from another agent is another incident */
	incident_as("h1:42", 100, 9000, 0);
	sw_store__counters(s, &c);
	cr_assert_eq(c.incidents_dropped, 9);
	incident_as("h2:43", 100, 9000, 0);
	sw_store__counters(s, &c);
	cr_assert_eq(c.incidents_dropped, 10);
	sw_store__lock(s);
	cr_assert_str_eq(sw_store__incident(s, 0)->agent, "h2:43");
	for (size_t i = 1; i < 8; i++) {
		in = sw_store__incident(s, i);
		if (in->start_ns == 9000 * MS)
			cr_assert_not(in->ongoing);
	}
	sw_store__unlock(s);
}

/* The ring as it was before the hash: a linear scan over (pid, start). */
struct ref_ring {
	uint32_t pid[64];
	uint64_t start[64];
	bool ongoing[64];
	size_t head, count, dropped;
};

static void ref_report(struct ref_ring *r, uint32_t pid, uint64_t start, bool ongoing)
{
	for (size_t i = 0; i < r->count; i++) {
		size_t k = (r->head + 64 - 1 - i) % 64;

		if (r->pid[k] == pid && r->start[k] == start) {
			if (r->ongoing[k])
				r->ongoing[k] = ongoing;
			return;
		}
	}
	if (r->count == 64)
		r->dropped++;
	else
		r->count++;
	r->pid[r->head] = pid;
	r->start[r->head] = start;
	r->ongoing[r->head] = ongoing;
	r->head = (r->head + 1) % 64;
}

Test(store, incident_ring_under_churn)
{
	static struct ref_ring ref;
	const size_t total = 20000;
	struct sw_store_counters c;
	size_t cpu = sw_store__pattern_index("node.cpu_bound_callback");
	uint64_t ended = 0, blocked = 0;

	new_store(16, 64);
	/* each block is reported ongoing, later ended, then ended again (a late
	 * copy); between them more blocks arrive, so some ends find their entry
	 * and some find it evicted. The hashed ring must do what the linear
	 * scan did, entry by entry. */
	for (size_t k = 0; k < total; k++) {
		uint32_t pid = 100 + (uint32_t)(k % 7);

		incident_as("h1:42", pid, k, 1);
		ref_report(&ref, pid, k * MS, true);
		if (k >= 80) {
			/* 20, 80 or 50 blocks ago: the first end finds its entry,
			 * the others find it evicted. The offsets differ by
			 * multiples of 3, so no two k pick the same j. */
			static const uint64_t ago[3] = {20, 80, 50};
			uint64_t j = k - ago[k % 3];
			uint32_t jp = 100 + (uint32_t)(j % 7);

			for (int copy = 0; copy < 2; copy++) {
				incident_as("h1:42", jp, j, 0);
				ref_report(&ref, jp, j * MS, false);
			}
			ended++;
		}
	}
	sw_store__counters(s, &c);
	cr_assert_eq(c.incidents_dropped, ref.dropped);
	/* some ends found their entry evicted (those were inserted, so more
	 * than total - 64 were dropped), some did not (fewer than all) */
	cr_assert_gt(ref.dropped, total - 64 + 1000);
	cr_assert_lt(ref.dropped, total - 64 + ended - 1000);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nincidents(s), 64);
	for (size_t i = 0; i < 64; i++) {
		const struct sw_incident_view *in = sw_store__incident(s, i);
		size_t k = (ref.head + 64 - 1 - i) % 64;

		cr_assert_eq(in->pid, ref.pid[k], "entry %zu", i);
		cr_assert_eq(in->start_ns, ref.start[k], "entry %zu", i);
		cr_assert_eq(in->ongoing, ref.ongoing[k], "entry %zu", i);
	}
	/* every end counted once, whether it found its entry or not */
	for (size_t i = 0; i < sw_store__nloops(s); i++)
		blocked += sw_store__loop(s, i)->blocked[cpu];
	cr_assert_eq(blocked, ended);
	sw_store__unlock(s);
}

static void apply_procs(Stallwatch__V1__ProcessInfo **pi, size_t n)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;

	b.processes = pi;
	b.n_processes = n;
	cr_assert_eq(sw_store__apply(s, "h1:42", &b, NOW), 0);
}

static size_t cause(const char *name)
{
	for (size_t i = 0; sw_exit_patterns[i]; i++)
		if (!strcmp(sw_exit_patterns[i], name))
			return i;
	cr_assert_fail("no exit cause %s", name);
	return 0;
}

Test(store, busy_split_accumulates_and_share_is_the_last_interval)
{
	struct t_loop a, b2, c;
	Stallwatch__V1__LoopSummary *lp[1];
	const struct sw_loop_view *v;

	new_store(4, 4);
	/* an agent without the split: nothing claimed */
	t_loop_init(&c, 100, 100, "node");
	t_loop_add(&c, 10 * MS, 10);
	lp[0] = &c.ls;
	apply_loops(lp, 1, 1);
	sw_store__lock(s);
	v = sw_store__loop(s, 0);
	cr_assert_not(v->have_split);
	sw_store__unlock(s);

	t_loop_init(&a, 100, 100, "node");
	t_loop_add(&a, 10 * MS, 10); /* 100 ms busy */
	a.ls.cpu_split = true;
	a.ls.oncpu_ns = 90 * MS;
	a.ls.offcpu_ns = 6 * MS;
	a.ls.runq_ns = 4 * MS;
	lp[0] = &a.ls;
	apply_loops(lp, 1, 2);
	t_loop_init(&b2, 100, 100, "node");
	t_loop_add(&b2, 50 * MS, 2); /* 100 ms busy, mostly waiting */
	b2.ls.cpu_split = true;
	b2.ls.oncpu_ns = 10 * MS;
	b2.ls.offcpu_ns = 90 * MS;
	lp[0] = &b2.ls;
	apply_loops(lp, 1, 3);
	sw_store__lock(s);
	v = sw_store__loop(s, 0);
	cr_assert(v->have_split);
	cr_assert_eq(v->oncpu_ns, 100 * MS);
	cr_assert_eq(v->offcpu_ns, 96 * MS);
	cr_assert_eq(v->runq_ns, 4 * MS);
	cr_assert_float_eq(v->cpu_share, 0.1, 1e-9);
	sw_store__unlock(s);
}

Test(store, rss_and_memory_growth_reach_the_process)
{
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	Stallwatch__V1__MemoryGrowth mg = STALLWATCH__V1__MEMORY_GROWTH__INIT, *mp[1] = {&mg};
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop a;
	Stallwatch__V1__LoopSummary *lp[1] = {&a.ls};
	struct sw_proc_view pv;

	new_store(4, 4);
	pi.pid = 300;
	pi.runtime = "python";
	pi.comm = "python3";
	apply_procs(pp, 1);
	t_loop_init(&a, 300, 300, "python");
	a.ls.rss_bytes = 123456789;
	apply_loops(lp, 1, 1);
	mg.pid = 300;
	mg.rate_bytes_per_s = 2048.5;
	mg.window_s = 60;
	b.memory = mp;
	b.n_memory = 1;
	cr_assert_eq(sw_store__apply(s, "h1:42", &b, NOW), 0);
	/* a finding for a process never announced is dropped, not invented */
	mg.pid = 999;
	cr_assert_eq(sw_store__apply(s, "h1:42", &b, NOW), 0);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nprocs(s), 1);
	sw_store__proc(s, 0, &pv);
	cr_assert_eq(pv.pid, 300);
	cr_assert_str_eq(pv.runtime, "python");
	cr_assert_eq(pv.rss_bytes, 123456789);
	cr_assert(pv.have_growth);
	cr_assert_float_eq(pv.growth_bps, 2048.5, 1e-9);
	cr_assert_float_eq(pv.growth_window_s, 60, 1e-9);
	cr_assert_not(pv.exited);
	sw_store__unlock(s);
}

/* Exits of (host h1, service, runtime) by cause; 0 when no such row. */
static uint64_t exits(struct sw_store *st, const char *service, const char *runtime, size_t c)
{
	for (size_t i = 0; i < sw_store__nexit_rows(st); i++) {
		const struct sw_exit_row *r = sw_store__exit_row(st, i);

		if (!strcmp(r->service, service) && !strcmp(r->runtime, runtime))
			return r->n[c];
	}
	return 0;
}

Test(store, exits_are_judged_again_and_counted_once)
{
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	new_store(8, 4);
	pi.pid = 100;
	pi.runtime = "node";
	pi.comm = "node";
	pi.service = "checkout";
	apply_procs(pp, 1);
	/* exit 1 after Node reported an uncaught exception from a promise;
	 * the agent's own pattern is not trusted */
	pi.exited = true;
	pi.exit_known = true;
	pi.exit_code = 1;
	pi.exit_uncaught = true;
	pi.exit_from_promise = true;
	pi.exit_pattern = "whatever";
	apply_procs(pp, 1);
	apply_procs(pp, 1); /* a late copy counts nothing */
	/* killed while blocked; never announced before: still counted */
	stallwatch__v1__process_info__init(&pi);
	pi.pid = 101;
	pi.runtime = "node";
	pi.exited = true;
	pi.exit_known = true;
	pi.exit_signal = 9;
	pi.exit_in_incident = true;
	apply_procs(pp, 1);
	/* an exec is no exit */
	stallwatch__v1__process_info__init(&pi);
	pi.pid = 102;
	pi.runtime = "python";
	apply_procs(pp, 1);
	pi.exited = true;
	pi.exit_pattern = "exec";
	apply_procs(pp, 1);
	/* an old agent: exited, nothing more */
	stallwatch__v1__process_info__init(&pi);
	pi.pid = 103;
	pi.runtime = "python";
	pi.exited = true;
	apply_procs(pp, 1);
	sw_store__lock(s);
	cr_assert_eq(exits(s, "checkout", "node", cause("node.unhandled_rejection")), 1);
	/* no ProcessInfo before its exit, none of its own: the comm would do,
	 * and without one "unknown" */
	cr_assert_eq(exits(s, "unknown", "node", cause("killed")), 1);
	cr_assert_eq(exits(s, "unknown", "python", cause("unknown")), 1);
	cr_assert_eq(exits(s, "unknown", "python", cause("exit_ok")), 0);
	cr_assert_eq(exits(s, "checkout", "node", cause("exit_error")), 0);
	cr_assert_eq(sw_store__nexit_rows(s), 3);
	sw_store__unlock(s);
}

/* ---- acks: dedup by seq for an agent that resends (Hello.acks) ---- */

static uint64_t apply_acked(const char *id, const Stallwatch__V1__Hello *h, uint64_t seq,
			    uint64_t iterations)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};
	uint64_t ack = ~0ull;

	t_loop_init(&l, 7, 7, "node");
	t_loop_add(&l, MS, iterations);
	b.seq = seq;
	b.hello = (Stallwatch__V1__Hello *)h;
	b.loops = iterations ? lp : NULL;
	b.n_loops = iterations ? 1 : 0;
	cr_assert_eq(sw_store__apply_ack(s, id, &b, NOW, &ack), 0);
	return ack;
}

static uint64_t iterations_of_pid7(void)
{
	uint64_t n = 0;

	sw_store__lock(s);
	for (size_t i = 0; i < sw_store__nloops(s); i++)
		if (sw_store__loop(s, i)->pid == 7)
			n += sw_store__loop(s, i)->iterations;
	sw_store__unlock(s);
	return n;
}

static Stallwatch__V1__Hello acking_hello(uint64_t start, uint64_t acked)
{
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;

	h.agent_id = "h2:7";
	h.hostname = "h2";
	h.acks = true;
	h.start_unix_ns = start;
	h.acked_seq = acked;
	return h;
}

Test(store, resent_batches_are_dropped_once_applied_and_acked_by_seq)
{
	Stallwatch__V1__Hello h = acking_hello(100, 0);
	struct sw_store_counters c;

	new_store(16, 16);
	cr_assert_eq(sw_store__agent_up(s, "h2:7", &h, NOW), 0);
	cr_assert_eq(apply_acked("h2:7", &h, 0, 0), 0, "the hello's ack: nothing applied yet");
	cr_assert_eq(apply_acked("h2:7", NULL, 1, 1), 1);
	cr_assert_eq(apply_acked("h2:7", NULL, 2, 1), 2);
	cr_assert_eq(apply_acked("h2:7", NULL, 3, 1), 3);
	cr_assert_eq(iterations_of_pid7(), 3);

	/* the connection dropped before the ack of 2 and 3 arrived: on a new
	 * one the agent resends them, then 4 */
	sw_store__agent_down(s, "h2:7", NOW);
	h = acking_hello(100, 1);
	cr_assert_eq(sw_store__agent_up(s, "h2:7", &h, NOW), 0);
	cr_assert_eq(apply_acked("h2:7", &h, 0, 0), 3, "the hello is acked with what was held");
	cr_assert_eq(apply_acked("h2:7", NULL, 2, 1), 3);
	cr_assert_eq(apply_acked("h2:7", NULL, 3, 1), 3);
	cr_assert_eq(apply_acked("h2:7", NULL, 4, 1), 4);
	cr_assert_eq(iterations_of_pid7(), 4, "a resent batch is not applied twice");
	/* 5 and 6 evicted by the agent */
	cr_assert_eq(apply_acked("h2:7", NULL, 7, 1), 7);
	sw_store__counters(s, &c);
	cr_assert_eq(c.batches_duplicate, 2);
	cr_assert_eq(c.batches_gap, 2, "resends are no gaps, evictions are");
}

Test(store, a_restarted_collector_counts_gaps_above_what_the_agent_had_acked)
{
	Stallwatch__V1__Hello h = acking_hello(100, 7);
	struct sw_store_counters c;

	/* this collector never saw the run: 1..7 went to its previous life */
	new_store(16, 16);
	cr_assert_eq(sw_store__agent_up(s, "h2:7", &h, NOW), 0);
	cr_assert_eq(apply_acked("h2:7", &h, 0, 0), 7);
	cr_assert_eq(apply_acked("h2:7", NULL, 8, 1), 8, "resent, never applied here: applied");
	cr_assert_eq(apply_acked("h2:7", NULL, 11, 1), 11); /* 9 and 10 evicted */
	sw_store__counters(s, &c);
	cr_assert_eq(c.batches_gap, 2);
	cr_assert_eq(c.batches_duplicate, 0);
	cr_assert_eq(iterations_of_pid7(), 2);
}

Test(store, a_new_run_under_the_same_id_starts_its_seq_afresh)
{
	Stallwatch__V1__Hello h = acking_hello(100, 0);
	struct sw_store_counters c;

	new_store(16, 16);
	cr_assert_eq(sw_store__agent_up(s, "h2:7", &h, NOW), 0);
	for (uint64_t q = 1; q <= 5; q++)
		apply_acked("h2:7", NULL, q, 1);
	sw_store__agent_down(s, "h2:7", NOW);
	/* the agent restarted in its container: same pid, same id */
	h = acking_hello(200, 0);
	cr_assert_eq(sw_store__agent_up(s, "h2:7", &h, NOW), 0);
	cr_assert_eq(apply_acked("h2:7", &h, 0, 0), 0);
	cr_assert_eq(apply_acked("h2:7", NULL, 1, 1), 1);
	sw_store__counters(s, &c);
	cr_assert_eq(c.batches_duplicate, 0);
	cr_assert_eq(c.batches_gap, 0);
	cr_assert_eq(iterations_of_pid7(), 6);
}

Test(store, an_agent_without_acks_is_never_deduplicated)
{
	struct sw_store_counters c;

	/* h1:42 said no acks (an older agent): its seq only counts gaps, and
	 * a restart of it (seq from 1 again) must not be dropped */
	new_store(16, 16);
	cr_assert_eq(apply_acked("h1:42", NULL, 5, 1), 0, "no ack for an agent that reads none");
	cr_assert_eq(apply_acked("h1:42", NULL, 1, 1), 0);
	sw_store__counters(s, &c);
	cr_assert_eq(c.batches_duplicate, 0);
	cr_assert_eq(iterations_of_pid7(), 2);
}
