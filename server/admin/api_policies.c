/*
 * api_policies.c - /api/policies and /api/operator-policies.
 * (Interim: the policy model lands with its own change; until then no
 * policy exists and setting one is refused.)
 */
#include "admin/api.h"

void api_policy_fields(json_t *o, struct vhost *vh, const char *name, bool is_queue)
{
	(void)vh;
	(void)name;
	(void)is_queue;
	json_object_set_new(o, "policy", json_null());
	json_object_set_new(o, "operator_policy", json_null());
	json_object_set_new(o, "effective_policy_definition", json_object());
}

void api_policies_list(struct areq *r)
{
	areq_reply_json(r, 200, json_array());
}

void api_policy_get(struct areq *r)
{
	areq_not_found(r);
}

void api_policy_put(struct areq *r)
{
	areq_error(r, 501, "not_implemented", "policies are not supported yet");
}

void api_policy_delete(struct areq *r)
{
	areq_not_found(r);
}
