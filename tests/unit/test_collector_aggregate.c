// SPDX-License-Identifier: Apache-2.0
/* The collector's store: merging deltas, interval gauges, incidents, caps. */
#include "aggregate.h"
#include "test_collector_helpers.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

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

TestSuite(aggregate, .fini = teardown);

Test(aggregate, merges_deltas_and_computes_interval_gauges)
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

Test(aggregate, empty_interval_zeroes_gauges_but_keeps_totals)
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
	cr_assert_eq(l->p99_ns, 0);
	cr_assert_eq(l->max_ns, 0);
	cr_assert_eq(l->utilization, 0);
	sw_store__unlock(s);
}

Test(aggregate, labels_are_bounded_and_taken_from_process_info)
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

Test(aggregate, incident_ongoing_then_final_is_updated_in_place)
{
	const struct sw_incident_view *in;
	const struct sw_loop_view *l;
	Stallwatch__V1__Incident inc;
	size_t cpu = sw_store__pattern_index("cpu-sync");

	new_store(16, 16);
	t_incident(&inc, 100, 100, 5000 * MS, 300 * MS, 1);
	apply_incident(&inc);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nincidents(s), 1);
	in = sw_store__incident(s, 0);
	cr_assert(in->ongoing);
	cr_assert_str_eq(in->pattern, "cpu-sync", "re-derived by the rules, not the agent's");
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

Test(aggregate, incident_ring_is_bounded_newest_first)
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
	cr_assert_eq(sw_store__loop(s, 0)->blocked[sw_store__pattern_index("cpu-sync")], 5);
	sw_store__unlock(s);
}

Test(aggregate, loop_cap_counts_refusals)
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

Test(aggregate, seq_gaps_are_counted)
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

Test(aggregate, exited_process_and_gone_agent_expire)
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

Test(aggregate, reconnect_revives_stale_series)
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

Test(aggregate, agent_health_keeps_the_latest)
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
