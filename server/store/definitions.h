/*
 * definitions.h - durable definitions (users, vhosts, permissions, limits,
 * exchanges, queues, bindings) in one JSON document, data_dir/definitions.json, in the shape
 * of RabbitMQ's definitions export (plus amqpd's exact argument tables).
 *
 * Saving writes a temporary file, fsyncs it, renames it over the old one
 * and fsyncs the directory, so a crash leaves either the old or the new
 * document.  Only durable objects are written: durable exchanges (not the
 * predeclared ones), durable non-exclusive queues, and bindings whose both
 * ends are durable.  Each exchange's bindings are written in the order they
 * were made and loading binds them in file order, so an exchange type sees
 * its bindings come back in that order (x-modulus-hash orders its
 * destinations by it; x-consistent-hash numbers its buckets by it).
 *
 * Threading: loop thread.  Saving blocks on fsync; definitions change
 * rarely, and the declare-ok must not be sent before they are durable.
 */
#ifndef DEFINITIONS_H
#define DEFINITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model;

/* The definitions store of one model.  data_dir NULL: nothing is saved. */
struct definitions {
	struct model *md;
	const char *data_dir;
	bool dirty;      /* durable definitions changed, not yet saved */
	bool frozen;     /* shutting down: deletions are not persisted */
	bool no_seed;    /* a first start creates no guest and "/" (definitions to load) */
	char error[600]; /* why the last import was refused */
};

/* Load and recreate everything in data_dir/definitions.json: users,
 * vhosts, permissions, topic permissions, limits, exchanges, queues,
 * bindings.  A missing file (or no data directory) is a first start: vhost
 * "/" and user guest/guest are created.  0, or -1 after logging why (the
 * broker does not start). */
int definitions_load(struct definitions *d);
/* Import a RabbitMQ definitions export (--definitions, as RabbitMQ's
 * load_definitions): users (with their password hashes, or a "password"
 * to hash), vhosts, permissions, topic permissions, vhost and user limits,
 * exchanges, queues, bindings; what amqpd does not support yet (policies,
 * other parameters) is named in a warning.  The whole document is checked
 * first: 0, or -1 with the bad item named in the log (then the broker does
 * not start). */
int definitions_import(struct definitions *d, const char *path);
/* Write the current durable definitions.  0 or -1 (logged). */
int definitions_save(struct definitions *d);
/* Note a change; definitions_flush() saves if something changed. */
void definitions_changed(struct definitions *d);
void definitions_flush(struct definitions *d);

/* For the admin API.  The current definitions as an export document (the
 * caller owns the reference). */
typedef struct json_t json_t;
json_t *definitions_export(struct definitions *d);
/* An AMQP field table as RabbitMQ's JSON shows it (new reference). */
json_t *definitions_table_json(const uint8_t *raw, size_t len);
/* A JSON object (RabbitMQ's "arguments") as an AMQP field table, encoded
 * as RabbitMQ encodes it (strings S, integers l, booleans t, floats d,
 * lists A, objects F); *out is malloc'ed.  NULL or null: an empty table.
 * 0, or -1 (not an object, or a key over 255 bytes). */
int definitions_json_table(json_t *obj, uint8_t **out, size_t *len);

/* Import a definitions document (RabbitMQ's export, or one vhost's with
 * vhost set) all or nothing: every item is checked before anything
 * changes; a refusal names the item in err.  What is accepted but not
 * imported (unsupported parameters and policies) is named in warnings
 * (strings appended) and the log.  0 or -1. */
int definitions_import_doc(struct definitions *d, json_t *doc, const char *vhost, char *err,
                           size_t errlen, json_t *warnings);

#endif
