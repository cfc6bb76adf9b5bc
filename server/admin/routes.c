/*
 * routes.c - the admin API's paths, methods and the tags they need, as
 * RabbitMQ's management API (rabbit_mgmt_dispatcher).  First match wins;
 * {x} is one path segment (percent-decoded, so a vhost "/" is %2F).
 */
#include <event2/http.h>

#include "admin/api.h"

#define GET    EVHTTP_REQ_GET
#define PUT    EVHTTP_REQ_PUT
#define POST   EVHTTP_REQ_POST
#define DELETE EVHTTP_REQ_DELETE

/* Reads of everything need monitoring; changes of users, vhosts and
 * permissions need administrator; a management user sees and changes
 * what its permissions allow (checked per vhost by the handlers and, for
 * operations through the engine, by the broker itself). */
#define MON    TAG_MONITORING
#define ADMIN  TAG_ADMIN
#define POLICY (TAG_POLICYMAKER | TAG_ADMIN)

const struct route admin_routes[] = {
    {GET, "api/overview", 0, api_overview},
    {GET, "api/whoami", 0, api_whoami},
    {GET, "api/cluster-name", 0, api_cluster_name},
    {GET, "api/nodes", MON, api_nodes},
    {GET, "api/nodes/{node}", MON, api_node},
    {GET, "api/extensions", 0, api_extensions},
    {GET, "api/health/checks/alarms", 0, api_health_alarms},
    {GET, "api/health/checks/local-alarms", 0, api_health_local_alarms},
    {GET, "api/health/checks/port-listener/{port}", 0, api_health_port},
    {GET, "api/health/checks/protocol-listener/{protocol}", 0, api_health_protocol},
    {GET, "api/health/checks/virtual-hosts", 0, api_health_ok},
    {GET, "api/health/checks/node-is-quorum-critical", 0, api_health_ok},
    {GET, "api/health/checks/node-is-mirror-sync-critical", 0, api_health_ok},
    {GET, "api/health/checks/certificate-expiration/{n}/{unit}", 0, api_health_ok},
    {GET, "api/aliveness-test/{vhost}", 0, api_aliveness},

    {GET, "api/connections", 0, api_connections_list},
    {GET, "api/vhosts/{vhost}/connections", 0, api_connections_list},
    {GET, "api/connections/{name}", 0, api_connection_get},
    {DELETE, "api/connections/{name}", 0, api_connection_delete},
    {GET, "api/connections/{name}/channels", 0, api_connection_channels},
    {GET, "api/channels", 0, api_channels_list},
    {GET, "api/vhosts/{vhost}/channels", 0, api_channels_list},
    {GET, "api/channels/{name}", 0, api_channel_get},
    {GET, "api/consumers", 0, api_consumers_list},
    {GET, "api/consumers/{vhost}", 0, api_consumers_list},

    {GET, "api/exchanges", 0, api_exchanges_list},
    {GET, "api/exchanges/{vhost}", 0, api_exchanges_list},
    {GET, "api/exchanges/{vhost}/{name}", 0, api_exchange_get},
    {PUT, "api/exchanges/{vhost}/{name}", 0, api_exchange_put},
    {DELETE, "api/exchanges/{vhost}/{name}", 0, api_exchange_delete},
    {POST, "api/exchanges/{vhost}/{name}/publish", 0, api_exchange_publish},
    {GET, "api/exchanges/{vhost}/{name}/bindings/source", 0, api_exchange_bindings_source},
    {GET, "api/exchanges/{vhost}/{name}/bindings/destination", 0,
     api_exchange_bindings_destination},
    {GET, "api/exchanges/{vhost}/{name}/delayed", 0, api_exchange_delayed},
    {DELETE, "api/exchanges/{vhost}/{name}/delayed/{id}", 0, api_exchange_delayed_cancel},

    {GET, "api/queues", 0, api_queues_list},
    {GET, "api/queues/{vhost}", 0, api_queues_list},
    {GET, "api/queues/{vhost}/{name}", 0, api_queue_get},
    {PUT, "api/queues/{vhost}/{name}", 0, api_queue_put},
    {DELETE, "api/queues/{vhost}/{name}", 0, api_queue_delete},
    {DELETE, "api/queues/{vhost}/{name}/contents", 0, api_queue_purge},
    {POST, "api/queues/{vhost}/{name}/get", 0, api_queue_get_messages},
    {GET, "api/queues/{vhost}/{name}/bindings", 0, api_queue_bindings},

    {GET, "api/bindings", 0, api_bindings_list},
    {GET, "api/bindings/{vhost}", 0, api_bindings_list},
    {GET, "api/bindings/{vhost}/{e}/{source}/{k}/{dest}", 0, api_bindings_between},
    {POST, "api/bindings/{vhost}/{e}/{source}/{k}/{dest}", 0, api_binding_create},
    {GET, "api/bindings/{vhost}/{e}/{source}/{k}/{dest}/{props}", 0, api_binding_get},
    {DELETE, "api/bindings/{vhost}/{e}/{source}/{k}/{dest}/{props}", 0, api_binding_delete},

    {GET, "api/vhosts", 0, api_vhosts_list},
    {GET, "api/vhosts/{vhost}", 0, api_vhost_get},
    {PUT, "api/vhosts/{vhost}", ADMIN, api_vhost_put},
    {DELETE, "api/vhosts/{vhost}", ADMIN, api_vhost_delete},
    {GET, "api/vhosts/{vhost}/permissions", ADMIN, api_vhost_permissions},
    {GET, "api/vhosts/{vhost}/topic-permissions", ADMIN, api_vhost_topic_permissions},

    {GET, "api/users", ADMIN, api_users_list},
    {GET, "api/users/without-permissions", ADMIN, api_users_without_permissions},
    {POST, "api/users/bulk-delete", ADMIN, api_users_bulk_delete},
    {GET, "api/users/{user}", ADMIN, api_user_get},
    {PUT, "api/users/{user}", ADMIN, api_user_put},
    {DELETE, "api/users/{user}", ADMIN, api_user_delete},
    {GET, "api/users/{user}/permissions", ADMIN, api_user_permissions},
    {GET, "api/users/{user}/topic-permissions", ADMIN, api_user_topic_permissions},

    {GET, "api/permissions", ADMIN, api_permissions_list},
    {GET, "api/permissions/{vhost}/{user}", ADMIN, api_permission_get},
    {PUT, "api/permissions/{vhost}/{user}", ADMIN, api_permission_put},
    {DELETE, "api/permissions/{vhost}/{user}", ADMIN, api_permission_delete},
    {GET, "api/topic-permissions", ADMIN, api_topic_permissions_list},
    {GET, "api/topic-permissions/{vhost}/{user}", ADMIN, api_topic_permission_get},
    {PUT, "api/topic-permissions/{vhost}/{user}", ADMIN, api_topic_permission_put},
    {DELETE, "api/topic-permissions/{vhost}/{user}", ADMIN, api_topic_permission_delete},

    {GET, "api/vhost-limits", MON, api_vhost_limits_list},
    {GET, "api/vhost-limits/{vhost}", MON, api_vhost_limits_list},
    {PUT, "api/vhost-limits/{vhost}/{name}", ADMIN, api_vhost_limit_put},
    {DELETE, "api/vhost-limits/{vhost}/{name}", ADMIN, api_vhost_limit_delete},
    {GET, "api/user-limits", ADMIN, api_user_limits_list},
    {GET, "api/user-limits/{user}", ADMIN, api_user_limits_list},
    {PUT, "api/user-limits/{user}/{name}", ADMIN, api_user_limit_put},
    {DELETE, "api/user-limits/{user}/{name}", ADMIN, api_user_limit_delete},

    {GET, "api/definitions", ADMIN, api_definitions_get},
    {POST, "api/definitions", ADMIN, api_definitions_post},
    {GET, "api/definitions/{vhost}", ADMIN, api_definitions_get},
    {POST, "api/definitions/{vhost}", ADMIN, api_definitions_post},

    {GET, "api/policies", 0, api_policies_list},
    {GET, "api/policies/{vhost}", 0, api_policies_list},
    {GET, "api/policies/{vhost}/{name}", 0, api_policy_get},
    {PUT, "api/policies/{vhost}/{name}", POLICY, api_policy_put},
    {DELETE, "api/policies/{vhost}/{name}", POLICY, api_policy_delete},
    {GET, "api/operator-policies", 0, api_policies_list},
    {GET, "api/operator-policies/{vhost}", 0, api_policies_list},
    {GET, "api/operator-policies/{vhost}/{name}", 0, api_policy_get},
    {PUT, "api/operator-policies/{vhost}/{name}", ADMIN, api_policy_put},
    {DELETE, "api/operator-policies/{vhost}/{name}", ADMIN, api_policy_delete},
};

const size_t admin_nroutes = sizeof(admin_routes) / sizeof(admin_routes[0]);
