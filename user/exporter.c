// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * HTTP is libmicrohttpd's job; this file only answers GET /metrics with the text
 * exposition, rendered fresh for every scrape from the pinned maps.
 */
#include "exporter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "metrics.h"
#include "packet.h"
#include "stop.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, char *body,
			     size_t len, const char *type)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	(void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET /metrics\n"), 13,
			     "text/plain");
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, strdup("see /metrics\n"), 13, "text/plain");

	char *body = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&body, &len);
	struct text_error err = { "" };
	int rc = out ? metrics_write(out, &err) : -1;
	if (out)
		fclose(out);
	if (rc < 0) {
		free(body);
		char *msg = NULL;
		int n = asprintf(&msg, "lyncxdp: %s\n", err.msg);
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, n < 0 ? NULL : msg,
			     n < 0 ? 0 : (size_t)n, "text/plain");
	}
	return reply(conn, MHD_HTTP_OK, body, len, CONTENT_TYPE);
}

int exporter_run(const char *listen, struct text_error *err)
{
	struct endpoint ep;
	char why[256];
	if (endpoint_parse(listen, &ep, why, sizeof(why)) < 0) {
		snprintf(err->msg, sizeof(err->msg), "--listen: %s", why);
		return -1;
	}
	struct sockaddr_storage ss = { 0 };
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD; /* errors: ours, in one line */
	if (ep.family == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(ep.port);
		memcpy(&sin->sin_addr, ep.addr, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ep.port);
		memcpy(&sin6->sin6_addr, ep.addr, 16);
		flags |= MHD_USE_IPv6;
	}
	struct MHD_Daemon *d =
	    MHD_start_daemon(flags, ep.port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
			     (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64U,
			     MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
	if (!d) {
		snprintf(err->msg, sizeof(err->msg), "cannot listen on %s: %s", listen,
			 errno ? strerror(errno) : "in use, or no such address");
		return -1;
	}
	fprintf(stderr, "lyncxdp: serving metrics on http://%s/metrics\n", listen);
	while (!stop_requested)
		usleep(200000);
	MHD_stop_daemon(d);
	return 0;
}
