// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What the C tests share: die(), field and checksum helpers, frames, and struct prog (one
 * private instance of the real XDP program). See tests/support.h.
 */
#include "support.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

/* ---- failing setups ---- */

static const char *support_test = "test";

void support_name(const char *name)
{
	support_test = name;
}

void die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "%s: %s\n", support_test, msg);
	/* A FAIL line, so that tests/run.sh counts the failed setup with its reason. */
	printf("FAIL %s: setup: %s\n", support_test, msg);
	fflush(stdout);
	exit(2);
}

const char *why(const struct text_error *err)
{
	static char buf[sizeof(err->msg) + 2];
	if (!err->msg[0])
		return "";
	snprintf(buf, sizeof(buf), ": %s", err->msg);
	return buf;
}

/* ---- checksums (RFC 1071) ---- */

uint32_t csum_add(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static size_t ipv4_header_len(const uint8_t *ip)
{
	return (size_t)(ip[0] & 0x0f) * 4;
}

uint16_t ipv4_checksum(const uint8_t *ip)
{
	/* Every 16-bit word but the checksum field itself. */
	uint32_t sum = csum_add(ip, 10, 0);
	sum = csum_add(ip + 12, ipv4_header_len(ip) - 12, sum);
	return (uint16_t)~csum_fold(sum);
}

void ipv4_checksum_fix(uint8_t *ip)
{
	put16(ip + 10, ipv4_checksum(ip));
}

int ipv4_checksum_ok(const uint8_t *ip)
{
	return csum_fold(csum_add(ip, ipv4_header_len(ip), 0)) == 0xffff;
}

/* ---- frames ---- */

struct endpoint endpoint_of(const char *text)
{
	struct endpoint ep;
	char reason[256];
	if (endpoint_parse(text, &ep, reason, sizeof(reason)) < 0)
		die("test bug: %s", reason);
	return ep;
}

struct endpoint endpoint_at(const char *addr, uint16_t port)
{
	struct endpoint e;
	memset(&e, 0, sizeof(e));
	e.family = strchr(addr, ':') ? 6 : 4;
	if (inet_pton(e.family == 4 ? AF_INET : AF_INET6, addr, e.addr) != 1)
		die("test bug: bad address %s", addr);
	e.port = port;
	return e;
}

size_t frame_build(const struct packet_spec *spec, uint8_t *buf, size_t cap)
{
	size_t len = packet_build(spec, buf, cap);
	if (!len)
		die("test bug: packet_build refused a spec (%zu bytes of room)", cap);
	return len;
}

/* ---- one instance of the real XDP program ---- */

static int prog_load(struct prog *p, const char *name, const struct matrix *m, const struct site *s,
		     const struct prog_opts *o, struct text_error *err)
{
	static const struct prog_opts none;
	const struct compiled *c;
	if (!o)
		o = &none;
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->policy = o->policy;
	p->tag = o->tag;
	if (o->comp) {
		c = o->comp;
	} else {
		if (compile_tables(m, s, &p->comp, err) < 0)
			return -1;
		p->own_comp = 1;
		if (o->media && compile_media(&p->comp, m, s, o->media, err) < 0)
			return -1;
		c = &p->comp;
	}
	if (!o->config)
		return testrun_open(&p->t, m, s, c, o->policy, o->tag, err);
	struct lx_config cfg = loader_config(c);
	o->config(&cfg);
	return testrun_open_config(&p->t, m, s, c, o->policy, o->tag, &cfg, err);
}

/* err NULL: die on a failure. */
static int prog_failed(struct prog *p, const struct text_error *mine, struct text_error *err)
{
	prog_close(p);
	if (!err)
		die("%s: %s", p->name, mine->msg);
	return -1;
}

int prog_open(struct prog *p, const char *name, const struct matrix *m, const struct site *s,
	      const struct prog_opts *o, struct text_error *err)
{
	struct text_error mine = { { 0 } };
	if (prog_load(p, name, m, s, o, err ? err : &mine) < 0)
		return prog_failed(p, &mine, err);
	return 0;
}

int prog_open_file(struct prog *p, const char *name, const struct matrix *m, const char *site_path,
		   const struct prog_opts *o, struct text_error *err)
{
	struct text_error mine = { { 0 } };
	struct site s;
	if (site_load(site_path, m, &s, err ? err : &mine) < 0) {
		memset(p, 0, sizeof(*p));
		p->name = name;
		return prog_failed(p, &mine, err);
	}
	if (prog_load(p, name, m, &s, o, err ? err : &mine) < 0) {
		site_free(&s);
		return prog_failed(p, &mine, err);
	}
	p->site = s;
	p->own_site = 1;
	return 0;
}

void prog_close(struct prog *p)
{
	if (p->t.skel)
		testrun_close(&p->t);
	if (p->own_comp)
		compile_free(&p->comp);
	if (p->own_site)
		site_free(&p->site);
	p->t.skel = NULL;
	p->own_comp = p->own_site = 0;
}

void prog_set(struct prog *p, uint32_t policy, uint32_t tag)
{
	struct text_error err = { { 0 } };
	if (testrun_set(&p->t, policy, tag, &err) < 0)
		die("%s: %s", p->name, err.msg);
	p->policy = policy;
	p->tag = tag;
}

void prog_side(struct prog *p, uint32_t side)
{
	struct text_error err = { { 0 } };
	if (testrun_set_side(&p->t, side, &err) < 0)
		die("%s: %s", p->name, err.msg);
}

int prog_run(struct prog *p, const uint8_t *frame, size_t len, struct testrun_result *res)
{
	struct text_error err = { { 0 } };
	int rc = testrun_frame(&p->t, frame, len, res, &err);
	if (rc < 0)
		die("%s: %s", p->name, err.msg);
	return rc;
}

void prog_report(struct prog *p, struct stats_report *r)
{
	struct text_error err = { { 0 } };
	if (testrun_report(&p->t, r, &err) < 0)
		die("%s: %s", p->name, err.msg);
}
