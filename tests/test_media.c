// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Media recognition in the real XDP program (BPF_PROG_TEST_RUN): what a media service's UDP
 * payload carries (STUN, classic MS-TURN, multiplexed TURN, DTLS, RTCP, RTP, RTP inside TURN
 * ChannelData), RTP only once its stream is confirmed, per-kind counters, the tag mode on
 * mixed services, the stream table, and the false-positive rate on 1,000,000 random payloads,
 * DNS and QUIC (goal < 0.1%; expected 0: a random payload never confirms a stream).
 * Instances (struct prog) and frames: tests/support.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "support.h"
#include "compile.h"
#include "matrix.h"
#include "media.h"
#include "packet.h"
#include "site.h"
#include "streams.h"
#include "testrun.h"

#define MATRIX_PATH "maps/sfb2015.matrix"
#define MEDIA_PATH  "maps/media"

static struct matrix M;
static struct media_table T;

/* An instance that inspects media as attach does (struct prog, tests/support.c). */
static void open_inst(struct prog *in, const char *site, int tag)
{
	const struct prog_opts o = { .tag = (uint32_t)tag, .media = &T };
	prog_open_file(in, site, &M, site, &o, NULL);
}

/* A UDP (or TCP) frame SRC -> DST carrying payload; returns the result of the program. */
static struct testrun_result RES;
static int run_l4(struct prog *in, int ipproto, const char *src, const char *dst,
		  const uint8_t *payload, size_t plen, uint8_t tos)
{
	struct packet_spec spec = {
		.ipproto = (uint8_t)ipproto, .tos = tos, .payload_len = plen, .tcp_flags = 0x18
	};
	uint8_t frame[2048];
	spec.src = endpoint_of(src);
	spec.dst = endpoint_of(dst);
	size_t len = frame_build(&spec, frame, sizeof(frame));
	memcpy(frame + len - plen, payload, plen);
	if (prog_run(in, frame, len, &RES) != 0)
		die("%s: the kernel refused a frame of %zu bytes", in->name, len);
	return (int)RES.last.media;
}

static int run_udp(struct prog *in, const char *src, const char *dst, const uint8_t *payload,
		   size_t plen, uint8_t tos)
{
	return run_l4(in, IPPROTO_UDP, src, dst, payload, plen, tos);
}

static int run_tcp(struct prog *in, const char *src, const char *dst, const uint8_t *payload,
		   size_t plen)
{
	return run_l4(in, IPPROTO_TCP, src, dst, payload, plen, 0);
}

static size_t rtp(uint8_t *b, unsigned pt, int marker, uint16_t seq, uint32_t ts, uint32_t ssrc,
		  size_t payload)
{
	b[0] = 0x80;
	b[1] = (uint8_t)((marker ? 0x80 : 0) | pt);
	b[2] = (uint8_t)(seq >> 8);
	b[3] = (uint8_t)seq;
	uint32_t v = htonl(ts);
	memcpy(b + 4, &v, 4);
	v = htonl(ssrc);
	memcpy(b + 8, &v, 4);
	for (size_t i = 0; i < payload; i++)
		b[12 + i] = (uint8_t)(0x5a ^ i);
	return 12 + payload;
}

static const char *kname(int k)
{
	return k == LX_MEDIA_MAX ? "not inspected" : media_kind_name(k);
}

#define EXPECT_KIND(got, want, ...)                                                                \
	CHECK((got) == (want), __VA_ARGS__),                                                       \
	    (got) == (want) ? (void)0                                                              \
			    : (void)printf("    got %s, expected %s\n", kname(got), kname(want))

#define CLIENT "192.0.2.130"
#define PEER   "198.51.100.7"

static void test_recognition(void)
{
	struct prog in;
	open_inst(&in, "tests/sites/media.site", 0);
	uint8_t b[256];
	int k;

	/* STUN binding request with the magic cookie, no attributes. */
	memset(b, 0, 20);
	b[1] = 0x01;
	b[4] = 0x21, b[5] = 0x12, b[6] = 0xa4, b[7] = 0x42;
	k = run_udp(&in, CLIENT ":50000", PEER ":3478", b, 20, 0);
	EXPECT_KIND(k, LX_MEDIA_STUN, "STUN with the magic cookie is stun");
	/* Classic MS-TURN: no cookie, the length covers the attributes exactly. */
	memset(b, 0x33, 28);
	b[0] = 0x01, b[1] = 0x01, b[2] = 0, b[3] = 8;
	k = run_udp(&in, CLIENT ":50000", PEER ":3478", b, 28, 0);
	EXPECT_KIND(k, LX_MEDIA_STUN, "classic STUN / MS-TURN (no cookie, exact length) is stun");
	b[3] = 12;
	k = run_udp(&in, CLIENT ":50000", PEER ":3478", b, 28, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "a STUN-like header whose length does not fit is other");
	b[0] = 0xff, b[1] = 0x10;
	k = run_udp(&in, CLIENT ":50000", PEER ":3478", b, 28, 0);
	EXPECT_KIND(k, LX_MEDIA_STUN, "Microsoft's multiplexed TURN (0xFF10) is stun");
	/* DTLS 1.2 handshake record; TLS (0x03 version byte) over UDP is not DTLS. */
	memset(b, 0, 40);
	b[0] = 22, b[1] = 0xfe, b[2] = 0xfd;
	k = run_udp(&in, CLIENT ":50002", PEER ":3478", b, 40, 0);
	EXPECT_KIND(k, LX_MEDIA_DTLS, "DTLS record is dtls");
	b[1] = 0x03;
	k = run_udp(&in, CLIENT ":50002", PEER ":3478", b, 40, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "a TLS-versioned record is other");
	/* RTCP sender report: PT 200, length 6 words (28 bytes). */
	memset(b, 0, 28);
	b[0] = 0x80, b[1] = 200, b[3] = 6;
	k = run_udp(&in, CLIENT ":50004", PEER ":50005", b, 28, 0);
	EXPECT_KIND(k, LX_MEDIA_RTCP, "RTCP sender report (PT 200) is rtcp");
	b[3] = 9;
	k = run_udp(&in, CLIENT ":50004", PEER ":50005", b, 28, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "RTCP whose length runs past the datagram is other");

	/* RTP: other until the stream is confirmed by a second packet in sequence. */
	size_t n = rtp(b, 0, 1, 1000, 160000, 0x11111111, 160);
	k = run_udp(&in, CLIENT ":50010", PEER ":50020", b, n, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "first RTP packet of a stream (PCMU) is other: probation");
	n = rtp(b, 0, 0, 1001, 160160, 0x11111111, 160);
	k = run_udp(&in, CLIENT ":50010", PEER ":50020", b, n, 0);
	EXPECT_KIND(k, LX_MEDIA_AUDIO, "second in sequence confirms it: audio");
	n = rtp(b, 0, 0, 1002, 160320, 0x11111111, 160);
	k = run_udp(&in, CLIENT ":50010", PEER ":50020", b, n, 0);
	EXPECT_KIND(k, LX_MEDIA_AUDIO, "third: audio");
	n = rtp(b, 0, 0, 1003, 160480, 0x22222222, 160);
	k = run_udp(&in, CLIENT ":50010", PEER ":50020", b, n, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "same 5-tuple, another SSRC: a new stream on probation");
	n = rtp(b, 0, 0, 5000, 0, 0x33333333, 100);
	run_udp(&in, CLIENT ":50012", PEER ":50022", b, n, 0);
	n = rtp(b, 0, 0, 5005, 0, 0x33333333, 100);
	k = run_udp(&in, CLIENT ":50012", PEER ":50022", b, n, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "a second packet out of sequence restarts probation");
	for (unsigned pt = 121, i = 0; i < 2; i++) {
		n = rtp(b, pt, 0, (uint16_t)(7 + i), 90000 * i, 0x44444444, 200);
		k = run_udp(&in, CLIENT ":50030", PEER ":50040", b, n, 0);
	}
	EXPECT_KIND(k, LX_MEDIA_VIDEO, "RTVideo (PT 121) stream is video");
	for (unsigned i = 0; i < 2; i++) {
		n = rtp(b, 127, 0, (uint16_t)(65535 + i), 0, 0x55555555, 200);
		k = run_udp(&in, CLIENT ":50032", PEER ":50042", b, n, 0);
	}
	EXPECT_KIND(k, LX_MEDIA_SHARING, "RTData (PT 127) stream is sharing, across a wrap");
	for (unsigned i = 0; i < 3; i++) {
		n = rtp(b, 120, 0, (uint16_t)(1 + i), 0, 0x66666666, 100);
		k = run_udp(&in, CLIENT ":50034", PEER ":50044", b, n, 0);
	}
	EXPECT_KIND(k, LX_MEDIA_OTHER, "PT 120 is no payload type of maps/media: other");
	/* TURN ChannelData 0x4001 carrying RTP. */
	for (unsigned i = 0; i < 2; i++) {
		uint8_t inner[200];
		size_t m = rtp(inner, 114, 0, (uint16_t)(300 + i), 320 * i, 0x77777777, 60);
		b[0] = 0x40, b[1] = 0x01, b[2] = (uint8_t)(m >> 8), b[3] = (uint8_t)m;
		memcpy(b + 4, inner, m);
		k = run_udp(&in, CLIENT ":50036", PEER ":3478", b, 4 + m, 0);
	}
	EXPECT_KIND(k, LX_MEDIA_AUDIO, "RTAudio inside TURN ChannelData is audio");
	b[2] = 0x7f;
	k = run_udp(&in, CLIENT ":50036", PEER ":3478", b, 80, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "ChannelData whose length runs past the datagram is other");
	/* TCP: MS-TURN over TCP framing (0x02 control: STUN, 0x03 data: RTP), RFC 4571. */
	uint8_t f[256];
	memset(f, 0, 24);
	f[0] = 0x02, f[3] = 20;
	f[4 + 1] = 0x01, f[4 + 4] = 0x21, f[4 + 5] = 0x12, f[4 + 6] = 0xa4, f[4 + 7] = 0x42;
	k = run_tcp(&in, CLIENT ":50060", PEER ":50061", f, 24);
	EXPECT_KIND(k, LX_MEDIA_STUN, "TCP, MS-TURN control frame with STUN is stun");
	for (unsigned i = 0; i < 2; i++) {
		n = rtp(f + 4, 8, 0, (uint16_t)(40 + i), 160 * i, 0x88888888, 160);
		f[0] = 0x03, f[1] = 0, f[2] = (uint8_t)(n >> 8), f[3] = (uint8_t)n;
		k = run_tcp(&in, CLIENT ":50062", PEER ":50063", f, 4 + n);
	}
	EXPECT_KIND(k, LX_MEDIA_AUDIO, "TCP, MS-TURN data frames with PCMA in sequence: audio");
	for (unsigned i = 0; i < 2; i++) {
		n = rtp(f + 2, 121, 0, (uint16_t)(90 + i), 3000 * i, 0x99999999, 200);
		f[0] = (uint8_t)(n >> 8), f[1] = (uint8_t)n;
		k = run_tcp(&in, CLIENT ":50064", PEER ":50066", f, 2 + n);
	}
	EXPECT_KIND(k, LX_MEDIA_VIDEO, "TCP, RFC 4571 framed RTVideo in sequence: video");
	memset(f, 0x41, 100);
	f[0] = 0x17, f[1] = 0x03, f[2] = 0x03, f[3] = 0, f[4] = 95;
	k = run_tcp(&in, CLIENT ":50068", PEER ":50069", f, 100);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "TCP, a TLS record is other");
	k = run_tcp(&in, CLIENT ":50068", PEER ":50069", f, 0);
	EXPECT_KIND(k, LX_MEDIA_OTHER, "TCP, a segment without payload is other");
	k = run_tcp(&in, CLIENT ":50070", "192.0.2.11:5061", f, 100);
	EXPECT_KIND(k, LX_MEDIA_MAX, "TCP to a non-media service (sip-tls) is not inspected");

	/* Not inspected: a service that is not a media service, and unclassified UDP. */
	memset(b, 0, 20);
	k = run_udp(&in, CLIENT ":68", "192.0.2.1:67", b, 20, 0);
	EXPECT_KIND(k, LX_MEDIA_MAX, "a UDP packet of a non-media service (DHCP) is not inspected");
	k = run_udp(&in, PEER ":40000", "198.51.100.8:50000", b, 20, 0);
	EXPECT_KIND(k, LX_MEDIA_MAX, "an unclassified UDP packet is not inspected");

	/* The stream table: the confirmed streams, with their figures. */
	struct streams_report sr;
	struct text_error err = { { 0 } };
	if (streams_collect(in.t.fds.streams, in.t.fds.rule_info, &T, 1u, &sr, &err) < 0)
		die("%s", err.msg);
	int found = 0;
	for (int i = 0; i < sr.n; i++) {
		const struct stream_row *r = &sr.rows[i];
		if (r->key.ssrc != 0x11111111)
			continue;
		found = 1;
		CHECK(r->st.packets == 3 && r->lost == 0 && r->st.kind == LX_MEDIA_AUDIO &&
			  r->st.pt == 0 && !strcmp(r->info.service, "client-media") &&
			  r->st.dir == LX_DIR_OUT,
		      "stream 0x11111111: 3 packets, none lost, audio PCMU, client-media out "
		      "(got %llu packets, %llu lost, kind %d, %s)",
		      (unsigned long long)r->st.packets, (unsigned long long)r->lost, r->st.kind,
		      r->info.service);
	}
	CHECK(found, "stream 0x11111111 is in the stream table");
	int unconfirmed = 0;
	for (int i = 0; i < sr.n; i++)
		unconfirmed |=
		    sr.rows[i].key.ssrc == 0x66666666 || sr.rows[i].key.ssrc == 0x22222222;
	CHECK(!unconfirmed && sr.n == 6,
	      "only confirmed streams are listed: 6 (PCMU, video, sharing, ChannelData, MS-TURN "
	      "TCP, RFC 4571; not the restarted one, back on probation); got %d",
	      sr.n);
	streams_free(&sr);

	/* Per-kind counters of the client-media rule. */
	struct stats_report rep;
	prog_report(&in, &rep);
	uint64_t kinds[LX_MEDIA_MAX] = { 0 };
	for (int i = 0; i < rep.nrows; i++)
		if (!strcmp(rep.rows[i].info.service, "client-media"))
			for (int k2 = 0; k2 < LX_MEDIA_MAX; k2++)
				kinds[k2] += rep.rows[i].media[k2].packets;
	CHECK(kinds[LX_MEDIA_STUN] == 4 && kinds[LX_MEDIA_DTLS] == 1 && kinds[LX_MEDIA_RTCP] == 1 &&
		  kinds[LX_MEDIA_AUDIO] == 4 && kinds[LX_MEDIA_VIDEO] == 2 &&
		  kinds[LX_MEDIA_SHARING] == 1,
	      "per-kind counters of client-media (UDP and TCP): stun 4, dtls 1, rtcp 1, audio 4, "
	      "video 2, sharing 1 (got %llu %llu %llu %llu %llu %llu, other %llu)",
	      (unsigned long long)kinds[LX_MEDIA_STUN], (unsigned long long)kinds[LX_MEDIA_DTLS],
	      (unsigned long long)kinds[LX_MEDIA_RTCP], (unsigned long long)kinds[LX_MEDIA_AUDIO],
	      (unsigned long long)kinds[LX_MEDIA_VIDEO],
	      (unsigned long long)kinds[LX_MEDIA_SHARING],
	      (unsigned long long)kinds[LX_MEDIA_OTHER]);
	stats_free(&rep);
	prog_close(&in);
}

static unsigned dscp_of(void)
{
	return RES.last.dscp;
}

/* Tag mode: `-` media services are marked by what they carry once it is confirmed RTP. */
static void test_tagging(const char *site, unsigned audio)
{
	struct prog in;
	open_inst(&in, site, 1);
	uint8_t b[256];
	size_t n;
	const char *name = strstr(site, "dscp") ? " (site override)" : "";
	struct {
		unsigned pt;
		unsigned dscp;
		const char *what;
		const char *src, *dst;
	} cases[] = {
		{ 0, audio, "client-media PCMU", CLIENT ":50100", PEER ":50200" },
		{ 122, 34, "client-media H.264UC", CLIENT ":50102", PEER ":50202" },
		{ 127, 24, "client-media RTData", CLIENT ":50104", PEER ":50204" },
		{ 104, audio, "edge-media-relay SILK", PEER ":40000", "203.0.113.10:50010" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		n = rtp(b, cases[c].pt, 0, 10, 0, 0xabc0u + (unsigned)c, 100);
		run_udp(&in, cases[c].src, cases[c].dst, b, n, 0);
		CHECK(dscp_of() == 0, "tag%s: %s, first packet (probation) keeps DSCP 0 (got %u)",
		      name, cases[c].what, dscp_of());
		n = rtp(b, cases[c].pt, 0, 11, 160, 0xabc0u + (unsigned)c, 100);
		run_udp(&in, cases[c].src, cases[c].dst, b, n, 1);
		CHECK(dscp_of() == cases[c].dscp,
		      "tag%s: %s, confirmed: DSCP %u (got %u), ECN kept", name, cases[c].what,
		      cases[c].dscp, dscp_of());
	}
	/* STUN on a mixed service keeps its DSCP; the media-audio rule writes its own 46. */
	memset(b, 0, 20);
	b[4] = 0x21, b[5] = 0x12, b[6] = 0xa4, b[7] = 0x42;
	run_udp(&in, CLIENT ":50106", PEER ":3478", b, 20, 0);
	CHECK(dscp_of() == 0, "tag%s: STUN on client-media keeps DSCP 0 (got %u)", name, dscp_of());
	run_udp(&in, PEER ":40000", "192.0.2.11:50000", b, 20, 0);
	CHECK(dscp_of() == audio, "tag%s: anything on media-audio gets the rule's DSCP %u (got %u)",
	      name, audio, dscp_of());
	prog_close(&in);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Frames of one family of payloads; returns how many the program counted as RTP media. */
static uint64_t false_positives(struct prog *in, const char *what, uint64_t count, int kind,
				uint64_t *header_like)
{
	uint64_t fp = 0;
	uint8_t b[1200];
	for (uint64_t i = 0; i < count; i++) {
		size_t n = 20 + rnd() % 1000;
		for (size_t j = 0; j < n; j++)
			b[j] = (uint8_t)rnd();
		if (kind == 1) { /* DNS query: id, flags 0x0100, one question */
			n = 40;
			b[2] = 0x01, b[3] = 0x00, b[4] = 0, b[5] = 1;
			memset(b + 6, 0, 6);
		} else if (kind == 2) { /* QUIC long header (Initial) */
			b[0] = (uint8_t)(0xc0 | (b[0] & 0x3f));
			b[1] = 0, b[2] = 0, b[3] = 0, b[4] = 1;
		} else if (kind == 3) { /* QUIC short header */
			b[0] = (uint8_t)(0x40 | (b[0] & 0x3f));
		}
		if ((b[0] & 0xc0) == 0x80 && !(b[1] >= 192 && b[1] <= 223) &&
		    T.pt[b[1] & 0x7f].kind)
			(*header_like)++;
		/* One flow for all of them: the worst case, a stream table entry per SSRC. */
		int k = kind == 4 ? run_tcp(in, CLIENT ":50502", PEER ":50503", b, n)
				  : run_udp(in, CLIENT ":50500", PEER ":50600", b, n, 0);
		fp += k == LX_MEDIA_AUDIO || k == LX_MEDIA_VIDEO || k == LX_MEDIA_SHARING;
	}
	(void)what;
	return fp;
}

static void test_false_positives(uint64_t random_count)
{
	struct prog in;
	open_inst(&in, "tests/sites/media.site", 0);
	struct {
		const char *what;
		uint64_t count;
		int kind;
	} fams[] = {
		{ "random payloads", random_count, 0 },
		{ "DNS queries", 20000, 1 },
		{ "QUIC long-header packets", 20000, 2 },
		{ "QUIC short-header packets", 20000, 3 },
		{ "random payloads over TCP", 100000, 4 },
	};
	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		uint64_t header_like = 0;
		uint64_t fp =
		    false_positives(&in, fams[f].what, fams[f].count, fams[f].kind, &header_like);
		double rate = 100.0 * (double)fp / (double)fams[f].count;
		CHECK(
		    rate < 0.1,
		    "false positives, %llu %s on client-media: %llu counted as RTP media (%.4f%%, "
		    "goal < 0.1%%); %llu (%.2f%%) had an RTP header with a known payload type",
		    (unsigned long long)fams[f].count, fams[f].what, (unsigned long long)fp, rate,
		    (unsigned long long)header_like,
		    100.0 * (double)header_like / (double)fams[f].count);
	}
	prog_close(&in);
}

int main(int argc, char **argv)
{
	goto_repo_top();
	support_name("test_media");
	struct text_error err = { { 0 } };
	if (matrix_load(MATRIX_PATH, &M, &err) < 0 || media_load(MEDIA_PATH, &T, &err) < 0)
		die("%s", err.msg);
	const char *env = getenv("LYNCXDP_SEED");
	rng_state = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	if (!rng_state)
		rng_state = 1;
	printf("seed: %llu (LYNCXDP_SEED replays it)\n", (unsigned long long)rng_state);
	uint64_t random_count = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;

	puts("== 1. recognition, stream confirmation, stream table, per-kind counters");
	test_recognition();
	puts("== 2. tag mode on mixed media services");
	test_tagging("tests/sites/media.site", 46);
	test_tagging("tests/sites/media-dscp.site", 40);
	puts("== 3. false positives: random payloads, DNS, QUIC");
	test_false_positives(random_count);
	matrix_free(&M);
	return check_done();
}
