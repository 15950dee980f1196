// SPDX-License-Identifier: Apache-2.0
/*
 * The collector's series as a fleet's Prometheus sees them (issue 8): one
 * label set is one series on every exposition, through agent restarts, two
 * agents on a host and a reused pid; a gone process leaves at the scrape
 * after its final data; the worst block since each scraper's previous
 * scrape; the identity labels.
 */
#define _GNU_SOURCE /* memmem */
#include "clock.h"
#include "export.h"
#include "store.h"
#include "test_collector_helpers.h"
#include "test_exposition.h"
#include <criterion/criterion.h>
#include <stdio.h>

#define NOW (1000ull * 1000000000ull)

static struct sw_store *s;
static struct sw_buf text;

static void teardown(void)
{
	sw_buf__free(&text);
	sw_store__free(s);
	s = NULL;
}

TestSuite(fleet, .fini = teardown);

static void new_store(size_t max_loops)
{
	struct sw_store_opts o = {.max_loops = max_loops, .max_incidents = 16};

	s = sw_store__new(&o);
	cr_assert_not_null(s);
}

static void agent_up(const char *id, const char *host)
{
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;

	h.agent_id = (char *)id;
	h.hostname = (char *)host;
	cr_assert_eq(sw_store__agent_up(s, id, &h, NOW), 0);
}

/* A ProcessInfo; start 0: not sent. */
static void proc(const char *agent, uint32_t pid, uint64_t start, bool exited)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};

	pi.pid = pid;
	pi.runtime = "node";
	pi.runtime_version = "20.20.2";
	pi.comm = "node";
	pi.start_ticks = start;
	pi.exited = exited;
	pi.exit_known = exited;
	b.processes = pp;
	b.n_processes = 1;
	cr_assert_eq(sw_store__apply(s, agent, &b, NOW), 0);
}

/* One interval of `n` iterations of `ns` on the main loop of pid. */
static void loop(const char *agent, uint32_t pid, uint64_t ns, uint32_t n)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

	t_loop_init(&l, pid, pid, "node");
	t_loop_add(&l, ns, n);
	b.loops = lp;
	b.n_loops = 1;
	cr_assert_eq(sw_store__apply(s, agent, &b, NOW), 0);
}

/*
 * Every sample line's name and label set, and whether any repeats: the
 * exposition's one rule Prometheus drops data for without a word. Labels
 * are compared as written: the exporter writes them in one order.
 */
static void assert_no_duplicates(const char *t)
{
	size_t n = 0, cap = 1024;
	char **keys = calloc(cap, sizeof(*keys));

	for (const char *p = t; p && *p;) {
		const char *e = strchr(p, '\n'), *sp;

		if (!e)
			break;
		if (*p != '#') {
			sp = memrchr(p, ' ', (size_t)(e - p));
			cr_assert_not_null(sp);
			if (n == cap)
				keys = realloc(keys, (cap *= 2) * sizeof(*keys));
			keys[n++] = strndup(p, (size_t)(sp - p));
		}
		p = e + 1;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			cr_assert(strcmp(keys[i], keys[j]), "duplicate series: %s", keys[i]);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

static void scrape(const char *who)
{
	sw_buf__free(&text);
	cr_assert_eq(sw_export__scrape(s, NULL, who, &text), 0);
	assert_no_duplicates(text.p);
}

/* Lines starting with name{ that contain needle. */
static int count_lines(const char *name, const char *needle)
{
	return t_count_lines(text.p, name, needle);
}

static double value_of(const char *name, const char *needle)
{
	return t_value_of(text.p, name, needle);
}

#define ITER "stallwatch_eventloop_iterations_total"
#define MAXG "stallwatch_eventloop_delay_max_seconds"

Test(fleet, an_agent_restart_is_a_counter_reset_never_a_duplicate)
{
	new_store(16);
	agent_up("vm:1", "vm");
	proc("vm:1", 100, 5555, false);
	loop("vm:1", 100, 2 * MS, 950);
	scrape("prom");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 950);

	/* the agent stops after a last interval: its final values are in the
	 * next scrape, once */
	loop("vm:1", 100, 2 * MS, 10);
	sw_store__agent_down(s, "vm:1", NOW + 1);
	scrape("prom");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 960);
	cr_assert_eq(value_of("stallwatch_agent_up", "agent=\"vm:1\""), 0);
	scrape("prom");
	cr_assert_eq(count_lines(ITER, NULL), 0, "a frozen series:\n%s", text.p);

	/* the new agent of the host: the same process under the same labels,
	 * from 0; the old agent is not "down", it was replaced */
	agent_up("vm:2", "vm");
	proc("vm:2", 100, 5555, false);
	loop("vm:2", 100, 2 * MS, 3);
	scrape("prom");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 1);
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 3);
	cr_assert_eq(count_lines("stallwatch_agent_up", "agent=\"vm:1\""), 0, "%s", text.p);
	cr_assert_eq(value_of("stallwatch_agent_up", "agent=\"vm:2\""), 1);
}

Test(fleet, a_restart_before_the_old_series_left_still_makes_one_series)
{
	new_store(16);
	agent_up("vm:1", "vm");
	proc("vm:1", 100, 5555, false);
	loop("vm:1", 100, 2 * MS, 950);
	scrape("prom");
	/* no scrape between the old agent's end and the new one's data */
	sw_store__agent_down(s, "vm:1", NOW + 1);
	agent_up("vm:2", "vm");
	proc("vm:2", 100, 5555, false);
	loop("vm:2", 100, 2 * MS, 4);
	scrape("prom");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 1, "%s", text.p);
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 4);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 1);
	sw_store__unlock(s);
}

Test(fleet, a_new_agent_started_before_the_old_one_stopped_replaces_it)
{
	new_store(16);
	agent_up("vm:1", "vm");
	agent_up("vm:2", "vm");
	sw_store__agent_down(s, "vm:1", NOW + 1);
	scrape("prom");
	cr_assert_eq(count_lines("stallwatch_agent_up", "agent=\"vm:1\""), 0, "%s", text.p);
	/* an older one of the host going down is down, not replaced */
	agent_up("vm:3", "vm");
	agent_up("vm:1", "vm"); /* it came back: its id is known, not newer */
	sw_store__agent_down(s, "vm:3", NOW + 2);
	scrape("prom");
	cr_assert_eq(value_of("stallwatch_agent_up", "agent=\"vm:3\""), 0);
	cr_assert_eq(value_of("stallwatch_agent_up", "agent=\"vm:1\""), 1);
	/* a second agent of the host that has run for minutes is no restart
	 * of the first: the first going down is an agent down */
	sw_store__agent_down(s, "vm:1", NOW + 120 * 1000000000ull);
	scrape("prom");
	cr_assert_eq(value_of("stallwatch_agent_up", "agent=\"vm:1\""), 0);
}

/* A restart that starts the new agent before it stops the old one: the new
 * agent's ProcessInfo (sent once) must not be lost to the old one's life. */
Test(fleet, an_overlapping_restart_keeps_the_new_agents_process)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

	new_store(16);
	agent_up("vm:1", "vm");
	proc("vm:1", 100, 5555, false);
	loop("vm:1", 100, 2 * MS, 950);
	agent_up("vm:2", "vm");
	pi.pid = 100;
	pi.runtime = "node";
	pi.runtime_version = "20.20.2";
	pi.comm = "node";
	pi.service = "checkout";
	pi.start_ticks = 5555;
	b.processes = pp;
	b.n_processes = 1;
	t_loop_init(&l, 100, 100, "node");
	t_loop_add(&l, 2 * MS, 4);
	l.ls.rss_bytes = 1 << 20;
	b.loops = lp;
	b.n_loops = 1;
	cr_assert_eq(sw_store__apply(s, "vm:2", &b, NOW), 0);
	/* both live: the first keeps the series, the second is held back */
	scrape("prom");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 1);
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 950);
	cr_assert_eq(value_of("stallwatch_collector_series_dropped_total",
			      "reason=\"duplicate\""),
		     2, "the process and its loop");
	cr_assert_eq(value_of("stallwatch_collector_duplicate_loops", NULL), 1);
	/* the old one stops: the new one's series, with what its ProcessInfo
	 * said, from what it counted */
	sw_store__agent_down(s, "vm:1", NOW + 1);
	scrape("prom");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 1, "%s", text.p);
	cr_assert_eq(value_of(ITER "{host=\"vm\",service=\"checkout\",runtime=\"node\","
			      "runtime_version=\"20.20.2\",pid=\"100\"",
			      NULL),
		     4);
	cr_assert_eq(value_of("stallwatch_process_resident_bytes", "service=\"checkout\""),
		     1 << 20);
	cr_assert_eq(value_of("stallwatch_collector_duplicate_loops", NULL), 0);
	cr_assert_eq(count_lines("stallwatch_process_resident_bytes", NULL), 1);
	loop("vm:2", 100, 2 * MS, 1);
	scrape("prom");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 5);
	/* its exit is counted once, by the agent that owns it now */
	proc("vm:2", 100, 5555, true);
	scrape("prom");
	cr_assert_eq(value_of("stallwatch_process_exits_total",
			      "service=\"checkout\",runtime=\"node\",cause=\"exit_ok\""),
		     1);
}

Test(fleet, a_service_exit_row_starts_at_zero)
{
	new_store(16);
	agent_up("vm:1", "vm");
	proc("vm:1", 100, 5555, false);
	scrape("prom");
	/* before any exit: every cause, at 0 */
	cr_assert_eq(count_lines("stallwatch_process_exits_total", "service=\"node\""),
		     (int)sw_store__nexit_causes());
	cr_assert_eq(value_of("stallwatch_process_exits_total", "cause=\"exit_ok\""), 0);
	proc("vm:1", 100, 5555, true);
	scrape("prom");
	cr_assert_eq(value_of("stallwatch_process_exits_total", "cause=\"exit_ok\""), 1);
	/* the host's last agent expires: its exit counts go with it */
	sw_store__agent_down(s, "vm:1", NOW + 1);
	sw_store__tick(s, NOW + 2 + SW_STORE_EXPIRE_NS);
	scrape("prom");
	cr_assert_eq(count_lines("stallwatch_process_exits_total", NULL), 0, "%s", text.p);
}

Test(fleet, two_live_agents_on_one_host)
{
	new_store(16);
	agent_up("vm:1", "vm");
	agent_up("vm:2", "vm");
	/* different processes: both, told apart by pid */
	loop("vm:1", 100, 2 * MS, 5);
	loop("vm:2", 200, 2 * MS, 7);
	/* the same process from both: the second is refused and counted */
	loop("vm:2", 100, 2 * MS, 9);
	scrape("prom");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 5);
	cr_assert_eq(value_of(ITER, "pid=\"200\""), 7);
	cr_assert_eq(value_of("stallwatch_collector_series_dropped_total",
			      "reason=\"duplicate\""),
		     1);
	cr_assert_eq(count_lines("stallwatch_agent_up", NULL), 2);
	/* and one host's pid 100 is not another host's */
	agent_up("db:1", "db");
	loop("db:1", 100, 2 * MS, 11);
	scrape("prom");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 2);
	cr_assert_eq(value_of(ITER, "host=\"db\""), 11);
}

Test(fleet, a_reused_pid_is_a_new_series)
{
	new_store(16);
	agent_up("vm:1", "vm");
	proc("vm:1", 100, 5555, false);
	loop("vm:1", 100, 2 * MS, 950);
	scrape("prom");
	/* the pid comes back as another process (another start time) before
	 * the agent noticed the first one's exit */
	proc("vm:1", 100, 7777, false);
	loop("vm:1", 100, 2 * MS, 6);
	scrape("prom");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 1);
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 6);
	/* an agent that sends no start time: an exit, then the pid again */
	proc("vm:1", 100, 0, true);
	proc("vm:1", 100, 0, false);
	loop("vm:1", 100, 2 * MS, 2);
	scrape("prom");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 2);
	/* a repeated ProcessInfo of the same live process changes nothing */
	proc("vm:1", 100, 0, false);
	loop("vm:1", 100, 2 * MS, 2);
	scrape("prom");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 4);
}

Test(fleet, an_exited_process_leaves_after_each_scraper_saw_its_end)
{
	new_store(16);
	agent_up("vm:1", "vm");
	proc("vm:1", 100, 5555, false);
	proc("vm:1", 101, 5556, false);
	loop("vm:1", 100, 2 * MS, 5);
	loop("vm:1", 101, 2 * MS, 5);
	scrape("prom-a");
	scrape("prom-b");
	loop("vm:1", 100, 2 * MS, 1);
	proc("vm:1", 100, 5555, true);
	/* each scraper gets the final value once */
	scrape("prom-a");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 6);
	scrape("prom-a");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 0);
	cr_assert_eq(count_lines("stallwatch_process_exits_total", "cause=\"exit_ok\""), 1);
	/* the store keeps it for the scraper that has not seen it yet */
	/* the store's clock is the listener's: NOW here */
	sw_store__tick(s, NOW + 1);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 2);
	sw_store__unlock(s);
	scrape("prom-b");
	cr_assert_eq(value_of(ITER, "pid=\"100\""), 6);
	sw_store__tick(s, NOW + 2);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 1);
	cr_assert_eq(sw_store__nprocs(s), 1);
	cr_assert_eq(sw_store__nscrapers(s, sw_mono_ns()), 2);
	sw_store__unlock(s);
	scrape("prom-b");
	cr_assert_eq(count_lines(ITER, "pid=\"100\""), 0);
	cr_assert_eq(value_of(ITER, "pid=\"101\""), 5);
}

Test(fleet, the_worst_block_since_each_scrapers_previous_scrape)
{
	new_store(16);
	agent_up("vm:1", "vm");
	loop("vm:1", 100, 2 * MS, 5);
	scrape("prom");
	scrape("curl");
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.002);
	/* a 300 ms block in one interval, then quiet ones, all between two
	 * scrapes of prom: the last interval's max would hide it */
	loop("vm:1", 100, 300 * MS, 1);
	loop("vm:1", 100, 1 * MS, 50);
	scrape("curl"); /* another scraper takes nothing from prom */
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.3);
	loop("vm:1", 100, 1 * MS, 50);
	scrape("prom");
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.3);
	cr_assert_eq(value_of("nodejs_eventloop_delay_max_seconds", "pid=\"100\""), 0.3);
	/* nothing new since: the same value, not a 0 */
	scrape("prom");
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.3);
	scrape("curl");
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.001);
	loop("vm:1", 100, 1 * MS, 50);
	scrape("prom");
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.001);
}

Test(fleet, more_scrapers_than_slots_still_see_every_block)
{
	char who[32];

	new_store(16);
	agent_up("vm:1", "vm");
	loop("vm:1", 100, 2 * MS, 5);
	/* 9 scrapers for 8 slots: the one idle longest loses its slot and
	 * starts again from the last interval's max */
	for (int i = 0; i < SW_STORE_SCRAPERS + 1; i++) {
		snprintf(who, sizeof(who), "s%d", i);
		scrape(who);
		cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.002);
	}
	loop("vm:1", 100, 400 * MS, 1);
	scrape("s0");
	cr_assert_eq(value_of(MAXG, "pid=\"100\""), 0.4);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nscrapers(s, sw_mono_ns()), SW_STORE_SCRAPERS);
	sw_store__unlock(s);
}

Test(fleet, identity_labels)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};

	new_store(16);
	agent_up("node-7:1", "node-7");
	pi.pid = 100;
	pi.runtime = "python";
	pi.runtime_version = "3.11.2";
	pi.comm = "uvicorn";
	pi.service = "checkout";
	pi.container_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	pi.container_name = "api";
	pi.pod_uid = "6f1c2a4e-1b2c-4d3e-8f9a-0b1c2d3e4f5a";
	pi.pod_name = "checkout-7d9f-abcde";
	b.processes = pp;
	b.n_processes = 1;
	cr_assert_eq(sw_store__apply(s, "node-7:1", &b, NOW), 0);
	loop("node-7:1", 100, 2 * MS, 5);
	scrape("prom");
	cr_assert_eq(value_of(ITER "{host=\"node-7\",service=\"checkout\",runtime=\"python\","
			      "runtime_version=\"3.11.2\",container_id=\"0123456789ab\","
			      "container=\"api\",pod_uid=\"6f1c2a4e-1b2c-4d3e-8f9a-0b1c2d3e4f5a\","
			      "pod=\"checkout-7d9f-abcde\",pid=\"100\",tid=\"100\",role=\"main\"}",
			      NULL),
		     5);

	/* an older agent: the cgroup path only; no service: the comm; an id
	 * that is not hex is no id */
	stallwatch__v1__process_info__init(&pi);
	pi.pid = 200;
	pi.runtime = "node";
	pi.comm = "node";
	pi.container = "/kubepods/burstable/pod6f1c2a4e-1b2c-4d3e-8f9a-0b1c2d3e4f5a/"
		       "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
	cr_assert_eq(sw_store__apply(s, "node-7:1", &b, NOW), 0);
	pi.pid = 300;
	pi.container = "";
	pi.container_id = "not-hex-at-all-not-hex-at-all";
	cr_assert_eq(sw_store__apply(s, "node-7:1", &b, NOW), 0);
	loop("node-7:1", 200, 2 * MS, 5);
	loop("node-7:1", 300, 2 * MS, 5);
	scrape("prom");
	cr_assert_eq(value_of(ITER "{host=\"node-7\",service=\"node\",runtime=\"node\","
			      "container_id=\"fedcba987654\",",
			      "pid=\"200\""),
		     5);
	cr_assert_eq(value_of(ITER "{host=\"node-7\",service=\"node\",runtime=\"node\",pid=\"300\"",
			      NULL),
		     5);
}

/* docs/METRICS.md, Cardinality: the series of one loop thread by runtime. */
Test(fleet, series_per_loop_as_documented)
{
	static const struct {
		const char *runtime;
		int series;
	} want[] = {{"node", 61}, {"python", 49}, {"native", 35}};

	new_store(16);
	agent_up("vm:1", "vm");
	for (size_t i = 0; i < 3; i++) {
		Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
		struct t_loop l;
		Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

		t_loop_init(&l, 100 + i, 100 + i, want[i].runtime);
		t_loop_add(&l, 2 * MS, 5);
		l.ls.cpu_split = true;
		l.ls.oncpu_ns = l.ls.busy_ns;
		b.loops = lp;
		b.n_loops = 1;
		cr_assert_eq(sw_store__apply(s, "vm:1", &b, NOW), 0);
	}
	scrape("prom");
	for (size_t i = 0; i < 3; i++) {
		char pid[32];
		int n = 0;

		snprintf(pid, sizeof(pid), "pid=\"%zu\",tid=", 100 + i);
		for (const char *p = text.p; (p = strstr(p, pid)); p++)
			n++;
		cr_assert_eq(n, want[i].series, "%s loop: %d series", want[i].runtime, n);
	}
}
