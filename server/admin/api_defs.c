/*
 * api_defs.c - /api/definitions and /api/definitions/{vhost}: export
 * (GET, RabbitMQ's document) and import (POST, all or nothing: the whole
 * document is checked before anything changes, and the error names the
 * item).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "config.h"
#include "io/broker.h"
#include "model/vhost.h"
#include "store/definitions.h"
#include "util/log.h"

/* Keep only the items of one vhost, and drop what a vhost export has not
 * (users, vhosts, permissions), as RabbitMQ's per-vhost export. */
static void only_vhost(json_t *doc, const char *vhost)
{
	const char *lists[] = {"queues", "exchanges", "bindings", "policies", "parameters"};
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		json_t *arr = json_object_get(doc, lists[k]);
		json_t *keep = json_array();
		size_t i;
		json_t *o;
		json_array_foreach(arr, i, o)
		{
			const char *v = json_string_value(json_object_get(o, "vhost"));
			if (v && strcmp(v, vhost) == 0) {
				json_t *c = json_deep_copy(o);
				json_object_del(c, "vhost");
				json_array_append_new(keep, c);
			}
		}
		json_object_set_new(doc, lists[k], keep);
	}
	const char *drop[] = {"users", "vhosts", "permissions", "topic_permissions",
	                      "global_parameters"};
	for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
		json_object_del(doc, drop[k]);
}

void api_definitions_get(struct areq *r)
{
	struct vhost *vh = NULL;
	if (r->nseg == 3 && !(vh = areq_vhost(r, 2)))
		return;
	json_t *doc = definitions_export(&r->a->b->defs);
	if (!doc) {
		areq_error(r, 500, "internal_error", "cannot build the definitions");
		return;
	}
	json_object_set_new(doc, "rabbit_version", json_string("3.10.0"));
	json_object_set_new(doc, "rabbitmq_version", json_string("3.10.0"));
	json_object_set_new(doc, "product_name", json_string("amqpd"));
	json_object_set_new(doc, "product_version", json_string(PACKAGE_VERSION));
	if (vh)
		only_vhost(doc, vh->name);
	const char *dl = areq_param(r, "download");
	if (dl && *dl) {
		char cd[512];
		snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", dl);
		areq_set_header(r, "Content-Disposition", cd);
	}
	areq_reply_json(r, 200, doc);
}

void api_definitions_post(struct areq *r)
{
	struct vhost *vh = NULL;
	if (r->nseg == 3 && !(vh = areq_vhost(r, 2)))
		return;
	json_t *body = areq_body(r);
	if (!body)
		return;
	/* The console's upload form posts {"file": <document>}. */
	json_t *doc = json_object_get(body, "file");
	if (json_is_string(doc)) {
		json_error_t e;
		doc = json_loads(json_string_value(doc), 0, &e);
		if (!doc) {
			areq_bad_request(r, "not_json");
			return;
		}
		json_object_set_new(body, "file", doc);
	}
	if (!json_is_object(doc))
		doc = body;
	if (!json_is_object(doc)) {
		areq_bad_request(r, "not_json");
		return;
	}
	char err[1024];
	json_t *warnings = json_array();
	if (definitions_import_doc(&r->a->b->defs, doc, vh ? vh->name : NULL, err, sizeof(err),
	                           warnings) < 0) {
		json_decref(warnings);
		log_warning("admin: user '%s': definitions import refused: %s", r->user, err);
		areq_bad_request(r, err);
		return;
	}
	log_info("admin: user '%s' imported definitions", r->user);
	broker_schedule(r->a->b);
	if (json_array_size(warnings)) {
		areq_reply_json(r, 200, json_pack("{s:o}", "warnings", warnings));
		return;
	}
	json_decref(warnings);
	areq_no_content(r);
}
