// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Captures come from many link types. The XDP program sees Ethernet, so frames of other
 * link types get an Ethernet header in place of theirs (raw IP, Linux cooked capture,
 * BSD loopback); anything else is refused with its link type named.
 */
#include "capture.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#define FRAME_MAX 65536

/* The network-layer ethertype for a frame of this link type, and its header length. */
static int link_header(int dlt, const uint8_t *data, size_t len, uint16_t *ethertype,
		       size_t *hdrlen)
{
	switch (dlt) {
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		*hdrlen = 0;
		*ethertype = len && (data[0] >> 4) == 6 ? 0x86dd : 0x0800;
		return 0;
	case DLT_LINUX_SLL: /* 16 bytes, protocol in the last two */
		if (len < 16)
			return -1;
		*hdrlen = 16;
		*ethertype = (uint16_t)(data[14] << 8 | data[15]);
		return 0;
	case DLT_LINUX_SLL2: /* 20 bytes, protocol first */
		if (len < 20)
			return -1;
		*hdrlen = 20;
		*ethertype = (uint16_t)(data[0] << 8 | data[1]);
		return 0;
	case DLT_NULL:
	case DLT_LOOP: /* 4-byte address family, either byte order */
		if (len < 5)
			return -1;
		*hdrlen = 4;
		*ethertype = (data[4] >> 4) == 6 ? 0x86dd : 0x0800;
		return 0;
	default:
		return -1;
	}
}

struct untimed {
	capture_fn fn;
	void *arg;
};

static int drop_time(const uint8_t *frame, size_t len, uint64_t ts_ns, void *arg)
{
	(void)ts_ns;
	struct untimed *u = arg;
	return u->fn(frame, len, u->arg);
}

int capture_foreach(const char *path, capture_fn fn, void *arg, struct capture_counts *counts,
		    struct text_error *err)
{
	struct untimed u = { fn, arg };
	return capture_foreach_timed(path, drop_time, &u, counts, err);
}

int capture_foreach_timed(const char *path, capture_timed_fn fn, void *arg,
			  struct capture_counts *counts, struct text_error *err)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	static uint8_t frame[FRAME_MAX + 14];

	memset(counts, 0, sizeof(*counts));
	/* Nanosecond timestamps whatever the file's resolution (pcapng keeps its own). */
	pcap_t *pc =
	    pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pc) {
		snprintf(err->msg, sizeof(err->msg), "%s: %s", path, errbuf);
		return -1;
	}
	int dlt = pcap_datalink(pc);
	struct pcap_pkthdr *h;
	const u_char *data;
	int r, rc = 0;
	while ((r = pcap_next_ex(pc, &h, &data)) == 1) {
		counts->frames++;
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ULL + (uint64_t)h->ts.tv_usec;
		/* What was on the wire: caplen bytes captured, len - caplen cut by the snap length.
		 */
		size_t wire = h->len > h->caplen ? h->len : h->caplen;
		if (h->caplen < h->len)
			counts->truncated++;
		if (dlt == DLT_EN10MB && wire == h->caplen) {
			if (fn(data, h->caplen, ts, arg))
				break;
			continue;
		}
		uint16_t ethertype = 0;
		size_t hdrlen = 0, at = 0;
		if (dlt != DLT_EN10MB &&
		    link_header(dlt, data, h->caplen, &ethertype, &hdrlen) < 0) {
			counts->skipped++;
			continue;
		}
		if (h->caplen - hdrlen > FRAME_MAX) {
			counts->skipped++;
			continue;
		}
		if (dlt != DLT_EN10MB) { /* an Ethernet header in place of the link's own */
			memset(frame, 0, 12);
			frame[12] = (uint8_t)(ethertype >> 8);
			frame[13] = (uint8_t)ethertype;
			at = 14;
		}
		memcpy(frame + at, data + hdrlen, h->caplen - hdrlen);
		size_t len = at + h->caplen - hdrlen, want = at + wire - hdrlen;
		if (want > len) {
			if (want > FRAME_MAX + 14)
				want = FRAME_MAX + 14;
			memset(frame + len, 0, want - len);
			len = want;
			counts->padded++;
		}
		if (fn(frame, len, ts, arg))
			break;
	}
	if (r == -1) {
		snprintf(err->msg, sizeof(err->msg), "%s: frame %llu: %s", path,
			 (unsigned long long)counts->frames + 1, pcap_geterr(pc));
		rc = -1;
	} else if (counts->frames == counts->skipped && counts->frames > 0) {
		snprintf(err->msg, sizeof(err->msg), "%s: link type %s is not supported", path,
			 pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?");
		rc = -1;
	}
	pcap_close(pc);
	return rc;
}
