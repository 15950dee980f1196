// SPDX-License-Identifier: Apache-2.0
#include <stdlib.h>
#include "memgrowth.h"

struct sw_memgrowth {
	struct sw_memgrowth_cfg cfg;
	/* ring of the last samples, oldest at head */
	double *t, *rss;
	uint32_t cap, n, head;
	uint64_t t0_ns; /* times are seconds since the first sample */
	double last_report_s;
	bool reported;
	double *ts, *rs; /* scratch: the window in order */
};

static void defaults(struct sw_memgrowth_cfg *c)
{
	if (!c->window_s)
		c->window_s = SW_MEMGROWTH_WINDOW_S;
	if (c->window_s > SW_MEMGROWTH_MAX_SAMPLES - 1)
		c->window_s = SW_MEMGROWTH_MAX_SAMPLES - 1;
	if (c->min_rate_bps <= 0)
		c->min_rate_bps = SW_MEMGROWTH_MIN_RATE;
	if (c->min_rel <= 0)
		c->min_rel = SW_MEMGROWTH_MIN_REL;
}

struct sw_memgrowth *sw_memgrowth__new(const struct sw_memgrowth_cfg *cfg)
{
	struct sw_memgrowth *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (cfg)
		m->cfg = *cfg;
	defaults(&m->cfg);
	/* a sample a second, and slack for a late tick */
	m->cap = m->cfg.window_s * 2 + 8;
	m->t = calloc(m->cap, sizeof(*m->t));
	m->rss = calloc(m->cap, sizeof(*m->rss));
	m->ts = calloc(m->cap, sizeof(*m->ts));
	m->rs = calloc(m->cap, sizeof(*m->rs));
	if (!m->t || !m->rss || !m->ts || !m->rs) {
		sw_memgrowth__free(m);
		return NULL;
	}
	return m;
}

void sw_memgrowth__free(struct sw_memgrowth *m)
{
	if (!m)
		return;
	free(m->t);
	free(m->rss);
	free(m->ts);
	free(m->rs);
	free(m);
}

/* Least-squares slope of y over x[lo, hi), and its r². */
static double slope(const double *x, const double *y, uint32_t lo, uint32_t hi, double *r2)
{
	double n = hi - lo, sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0, vx, vy, cxy;

	for (uint32_t i = lo; i < hi; i++) {
		sx += x[i];
		sy += y[i];
	}
	sx /= n;
	sy /= n;
	for (uint32_t i = lo; i < hi; i++) {
		double dx = x[i] - sx, dy = y[i] - sy;

		sxx += dx * dx;
		syy += dy * dy;
		sxy += dx * dy;
	}
	vx = sxx;
	vy = syy;
	cxy = sxy;
	if (r2)
		*r2 = (vx > 0 && vy > 0) ? cxy * cxy / (vx * vy) : 0;
	return vx > 0 ? cxy / vx : 0;
}

static double min_in(const double *y, uint32_t lo, uint32_t hi)
{
	double m = y[lo];

	for (uint32_t i = lo + 1; i < hi; i++)
		if (y[i] < m)
			m = y[i];
	return m;
}

bool sw_memgrowth_judge(const double *t, const double *rss, uint32_t n,
			const struct sw_memgrowth_cfg *cfg, struct sw_memgrowth_finding *out)
{
	struct sw_memgrowth_cfg c = *cfg;
	double b, r2, span, b1, b2, q_lo, q_hi, floor_rise, predicted;
	uint32_t half, q;

	defaults(&c);
	/* at least 8 samples: two per quarter */
	if (n < 8)
		return false;
	span = t[n - 1] - t[0];
	if (span <= 0)
		return false;
	b = slope(t, rss, 0, n, &r2);
	/* material, and more than the noise: a line that explains less than
	 * half the variance is a sawtooth's phase, not growth (a 20 s window
	 * over a 5 s GC cycle of 12 MB fitted 100 KB/s with r2 0.02) */
	if (b < c.min_rate_bps || rss[0] <= 0 || b * span < c.min_rel * rss[0] ||
	    r2 < SW_MEMGROWTH_MIN_R2)
		return false;
	/* sustained: both halves grow at half the rate or more */
	half = n / 2;
	b1 = slope(t, rss, 0, half, NULL);
	b2 = slope(t, rss, half, n, NULL);
	if (b1 < b / 2 || b2 < b / 2)
		return false;
	/* the floor rises: a sawtooth's lows stay where they were */
	q = n / 4;
	q_lo = min_in(rss, 0, q);
	q_hi = min_in(rss, n - q, n);
	floor_rise = q_hi - q_lo;
	predicted = b * (t[n - q] - t[q - 1]);
	if (floor_rise < predicted / 2)
		return false;
	out->window_s = span;
	out->rate_bps = b;
	out->r2 = r2;
	out->rss_start = (uint64_t)rss[0];
	out->rss_end = (uint64_t)rss[n - 1];
	return true;
}

bool sw_memgrowth__add(struct sw_memgrowth *m, uint64_t t_ns, uint64_t rss,
		       struct sw_memgrowth_finding *out)
{
	double now, from;
	uint32_t i, k, first;

	if (!m->n && !m->head)
		m->t0_ns = t_ns;
	now = (double)(t_ns - m->t0_ns) / 1e9;
	i = (m->head + m->n) % m->cap;
	m->t[i] = now;
	m->rss[i] = (double)rss;
	if (m->n < m->cap)
		m->n++;
	else
		m->head = (m->head + 1) % m->cap;
	/* drop what fell out of the window */
	from = now - m->cfg.window_s;
	while (m->n > 1 && m->t[(m->head + 1) % m->cap] <= from) {
		m->head = (m->head + 1) % m->cap;
		m->n--;
	}
	first = m->head;
	/* judge only a full window */
	if (now - m->t[first] < m->cfg.window_s * 0.95)
		return false;
	if (m->reported && now - m->last_report_s < m->cfg.window_s)
		return false;
	for (k = 0; k < m->n; k++) {
		m->ts[k] = m->t[(first + k) % m->cap];
		m->rs[k] = m->rss[(first + k) % m->cap];
	}
	if (!sw_memgrowth_judge(m->ts, m->rs, m->n, &m->cfg, out))
		return false;
	m->reported = true;
	m->last_report_s = now;
	return true;
}
