/*
 * main.c - amqpd's command line: parse options, start the broker, run it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"
#include "io/broker.h"
#include "config.h"
#include "plugin/plugin_host.h"
#include "util/log.h"

/* Long options without a short form. */
enum {
	OPT_LISTEN_TLS = 256,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_KEY_PASSWORD,
	OPT_TLS_CA,
	OPT_TLS_VERIFY,
	OPT_TLS_FAIL_NO_PEER,
	OPT_TLS_MIN_VERSION,
	OPT_TLS_CIPHERS,
	OPT_TLS_CIPHERSUITES,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_CONSUMER_TIMEOUT,
	OPT_CONSUMER_TIMEOUT_RESPONSE,
	OPT_AUTH_BACKENDS,
	OPT_LOOPBACK_USERS,
	OPT_DEFINITIONS,
	OPT_AUTH_TIMEOUT,
	OPT_LOGIN_FAILURE_DELAY,
	OPT_CERT_LOGIN_FROM,
	OPT_CERT_SAN_TYPE,
	OPT_CERT_SAN_INDEX,
	OPT_MGMT_LISTEN,
	OPT_CONSOLE_DIR,
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: amqpd [OPTION]...\n"
	        "An AMQP 0-9-1 message broker that RabbitMQ clients talk to unchanged.\n"
	        "Runs in the foreground and logs to stderr.\n\n"
	        "  -l, --listen [ADDR:]PORT  listen there (repeatable; default 5672 on all\n"
	        "                            IPv4 and IPv6 addresses)\n"
	        "  -P, --plugin-dir DIR      load plugins from DIR (default: the build tree's\n"
	        "                            plugins/lib when run from it, else %s)\n"
	        "  -d, --data-dir DIR        data directory (default %s)\n"
	        "  -p, --pid-file FILE       write the process id to FILE\n"
	        "  -L, --log-level LEVEL     error, warning, info (default) or debug\n"
	        "      --memory-high-watermark BYTES\n"
	        "                            block publishers while messages hold more than\n"
	        "                            BYTES (default 0.4 of RAM, as RabbitMQ)\n"
	        "      --disk-free-limit BYTES\n"
	        "                            block publishers while the data directory's\n"
	        "                            file system has less free (default 50000000)\n"
	        "      --queue-memory-budget BYTES\n"
	        "                            message bytes kept in memory; beyond it the\n"
	        "                            persistent messages of durable queues wait on\n"
	        "                            disk (default 268435456)\n"
	        "      --handshake-timeout MS\n"
	        "                            close connections that have not completed the\n"
	        "                            AMQP (and TLS) handshake in MS (default 10000)\n"
	        "      --consumer-timeout MS\n"
	        "                            a delivery not acknowledged in MS times out\n"
	        "                            (default 1800000, RabbitMQ's; 0 = never); per\n"
	        "                            queue and consumer: x-consumer-timeout\n"
	        "      --consumer-timeout-response close|notify_consumer\n"
	        "                            on a timeout, close the channel with 406\n"
	        "                            (default) or cancel the consumer and requeue\n"
	        "                            its deliveries\n"
	        "      --listen-tls [ADDR:]PORT\n"
	        "                            an amqps (TLS) listener (repeatable; RabbitMQ's\n"
	        "                            port is 5671); needs --tls-cert and --tls-key\n"
	        "      --tls-cert FILE       PEM certificate chain, the server's first\n"
	        "      --tls-key FILE        PEM private key\n"
	        "      --tls-key-password PASS\n"
	        "                            passphrase of an encrypted key\n"
	        "      --tls-ca FILE         CA certificates to verify clients against\n"
	        "      --tls-verify none|peer\n"
	        "                            ask clients for a certificate and verify it\n"
	        "                            (default none)\n"
	        "      --tls-fail-if-no-peer-cert\n"
	        "                            with --tls-verify peer: refuse clients that\n"
	        "                            send no certificate\n"
	        "      --tls-min-version tlsv1.2|tlsv1.3\n"
	        "                            oldest TLS version accepted (default tlsv1.2)\n"
	        "      --tls-ciphers LIST    TLS 1.2 ciphers (OpenSSL syntax)\n"
	        "      --tls-ciphersuites LIST\n"
	        "                            TLS 1.3 ciphersuites (OpenSSL syntax)\n"
	        "                            SIGHUP reloads the certificate, key and CA\n"
	        "      --definitions FILE    import a RabbitMQ definitions export (users,\n"
	        "                            vhosts, permissions, limits, exchanges, queues,\n"
	        "                            bindings) at start, as RabbitMQ's\n"
	        "                            load_definitions\n"
	        "      --auth-backends LIST  user backends asked in order, comma-separated\n"
	        "                            (default internal; plugins add http, oauth2)\n"
	        "      --loopback-users LIST users who may connect from loopback only\n"
	        "                            (default guest; '' or none: nobody)\n"
	        "      --auth-timeout MS     a backend's answer may take this long (15000)\n"
	        "      --login-failure-delay MS\n"
	        "                            a failed login's socket closes after MS (3000)\n"
	        "      --ssl-cert-login-from common_name|distinguished_name|\n"
	        "                            subject_alternative_name\n"
	        "                            the user name of EXTERNAL logins (default\n"
	        "                            common_name); with a SAN also\n"
	        "      --ssl-cert-login-san-type dns|email|uri|ip   (default dns) and\n"
	        "      --ssl-cert-login-san-index N                 (default 0)\n"
	        "      --management-listen [ADDR:]PORT|none\n"
	        "                            the HTTP admin API, metrics and console\n"
	        "                            (repeatable; default 15672, skipped if busy)\n"
	        "      --console-dir DIR     the web console's files (default\n"
	        "                            $(pkgdatadir)/www)\n"
	        "  -o, --plugin-opt PLUGIN.KEY=VALUE\n"
	        "                            give the plugin named PLUGIN (its descriptor\n"
	        "                            name, e.g. storage-file) the option KEY=VALUE\n"
	        "                            (repeatable); an option for a plugin that is\n"
	        "                            not loaded, or one the plugin refuses, stops\n"
	        "                            the start (see amqpd-plugin(7))\n"
	        "  -h, --help                show this help and exit\n"
	        "  -V, --version             show the version and exit\n",
	        PLUGINDIR, DATADIR);
}

/* A count (milliseconds, an index) from min to 3600000 for option `name`;
 * -1 (said on stderr) if it is not. */
static int parse_ms(const char *name, const char *arg, uint64_t min, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (!*arg || *end || *arg == '-' || errno == ERANGE || v < min || v > 3600000) {
		fprintf(stderr, "amqpd: %s wants a number from %llu to 3600000, got '%s'\n", name,
		        (unsigned long long)min, arg);
		return -1;
	}
	*out = v;
	return 0;
}

/* A number of bytes for option `name`; -1 (said on stderr) if it is not. */
static int parse_bytes(const char *name, const char *arg, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (!*arg || *end || *arg == '-' || errno == ERANGE) {
		fprintf(stderr, "amqpd: %s wants a number of bytes, got '%s'\n", name, arg);
		return -1;
	}
	*out = v;
	return 0;
}

/* Running uninstalled from the build tree?  Then use its staged plugins. */
static const char *default_plugin_dir(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			char marker[PATH_MAX + 64];
			snprintf(marker, sizeof(marker), "%s/../plugins/lib/.amqpd-build-tree",
			         exe);
			if (access(marker, F_OK) == 0) {
				snprintf(buf, len, "%s/../plugins/lib", exe);
				return buf;
			}
		}
	}
	return PLUGINDIR;
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* One amqpd per data directory: an flock()ed lock file holding our pid. */
static int lock_data_dir(struct broker *b)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/amqpd.lock", b->cfg.data_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("cannot open lock file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char pid[32] = "?";
		ssize_t n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		log_error("data directory %s is in use by another amqpd (pid %s); not starting",
		          b->cfg.data_dir, pid[0] ? pid : "?");
		close(fd);
		return -1;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warning("cannot write lock file %s: %s", path, strerror(errno));
	b->lock_fd = fd;
	return 0;
}

int main(int argc, char **argv)
{
	/* Message bodies up to 32 MiB come from the heap, and up to 64 MiB of
	 * freed heap stays mapped: with glibc's adaptive defaults every 1 MiB
	 * body was a fresh mmap (or a heap trim and regrow), and page faults
	 * and page clearing took 15-20 % of the 1 MiB path. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"plugin-dir", required_argument, NULL, 'P'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"pid-file", required_argument, NULL, 'p'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"memory-high-watermark", required_argument, NULL, 'M'},
	    {"disk-free-limit", required_argument, NULL, 'D'},
	    {"queue-memory-budget", required_argument, NULL, 'Q'},
	    {"listen-tls", required_argument, NULL, OPT_LISTEN_TLS},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"tls-key-password", required_argument, NULL, OPT_TLS_KEY_PASSWORD},
	    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
	    {"tls-verify", required_argument, NULL, OPT_TLS_VERIFY},
	    {"tls-fail-if-no-peer-cert", no_argument, NULL, OPT_TLS_FAIL_NO_PEER},
	    {"tls-min-version", required_argument, NULL, OPT_TLS_MIN_VERSION},
	    {"tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS},
	    {"tls-ciphersuites", required_argument, NULL, OPT_TLS_CIPHERSUITES},
	    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
	    {"consumer-timeout", required_argument, NULL, OPT_CONSUMER_TIMEOUT},
	    {"consumer-timeout-response", required_argument, NULL, OPT_CONSUMER_TIMEOUT_RESPONSE},
	    {"plugin-opt", required_argument, NULL, 'o'},
	    {"auth-backends", required_argument, NULL, OPT_AUTH_BACKENDS},
	    {"loopback-users", required_argument, NULL, OPT_LOOPBACK_USERS},
	    {"definitions", required_argument, NULL, OPT_DEFINITIONS},
	    {"auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT},
	    {"login-failure-delay", required_argument, NULL, OPT_LOGIN_FAILURE_DELAY},
	    {"ssl-cert-login-from", required_argument, NULL, OPT_CERT_LOGIN_FROM},
	    {"ssl-cert-login-san-type", required_argument, NULL, OPT_CERT_SAN_TYPE},
	    {"ssl-cert-login-san-index", required_argument, NULL, OPT_CERT_SAN_INDEX},
	    {"management-listen", required_argument, NULL, OPT_MGMT_LISTEN},
	    {"console-dir", required_argument, NULL, OPT_CONSOLE_DIR},
	    {NULL, 0, NULL, 0},
	};
	struct broker b;
	memset(&b, 0, sizeof(b));
	struct admin_config admin;
	admin_config_defaults(&admin);
	admin.console_dir = CONSOLEDIR;
	broker_config_defaults(&b.cfg);
	char plugbuf[PATH_MAX + 32];
	b.cfg.plugin_dir = default_plugin_dir(plugbuf, sizeof(plugbuf));
	b.cfg.data_dir = DATADIR;
	int c;
	while ((c = getopt_long(argc, argv, "l:P:d:p:L:o:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (b.cfg.nlisten == BROKER_MAX_LISTENERS) {
				fprintf(stderr, "amqpd: at most %d --listen options\n",
				        BROKER_MAX_LISTENERS);
				return 2;
			}
			b.cfg.listen[b.cfg.nlisten++] = optarg;
			break;
		case 'P':
			b.cfg.plugin_dir = optarg;
			break;
		case OPT_LISTEN_TLS:
			if (b.cfg.nlisten_tls == BROKER_MAX_LISTENERS) {
				fprintf(stderr, "amqpd: at most %d --listen-tls options\n",
				        BROKER_MAX_LISTENERS);
				return 2;
			}
			b.cfg.listen_tls[b.cfg.nlisten_tls++] = optarg;
			break;
		case OPT_TLS_CERT:
			b.cfg.tls.cert = optarg;
			break;
		case OPT_TLS_KEY:
			b.cfg.tls.key = optarg;
			break;
		case OPT_TLS_KEY_PASSWORD:
			b.cfg.tls.key_password = optarg;
			break;
		case OPT_TLS_CA:
			b.cfg.tls.ca = optarg;
			break;
		case OPT_TLS_VERIFY:
			if (strcmp(optarg, "peer") != 0 && strcmp(optarg, "none") != 0) {
				fprintf(stderr,
				        "amqpd: --tls-verify wants none or peer, got '%s'\n",
				        optarg);
				return 2;
			}
			b.cfg.tls.verify_peer = strcmp(optarg, "peer") == 0;
			break;
		case OPT_TLS_FAIL_NO_PEER:
			b.cfg.tls.fail_if_no_peer_cert = true;
			break;
		case OPT_TLS_MIN_VERSION:
			if (strcmp(optarg, "tlsv1.2") != 0 && strcmp(optarg, "tlsv1.3") != 0) {
				fprintf(stderr,
				        "amqpd: --tls-min-version wants tlsv1.2 or tlsv1.3, got "
				        "'%s'\n",
				        optarg);
				return 2;
			}
			b.cfg.tls.min_version = optarg;
			break;
		case OPT_TLS_CIPHERS:
			b.cfg.tls.ciphers = optarg;
			break;
		case OPT_TLS_CIPHERSUITES:
			b.cfg.tls.ciphersuites = optarg;
			break;
		case OPT_HANDSHAKE_TIMEOUT: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v == 0 || v > 3600000) {
				fprintf(stderr,
				        "amqpd: --handshake-timeout wants milliseconds (1 to "
				        "3600000), got '%s'\n",
				        optarg);
				return 2;
			}
			b.cfg.handshake_timeout = (uint32_t)v;
			break;
		}
		case OPT_CONSUMER_TIMEOUT: {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (!*optarg || *end || *optarg == '-' || errno || v > 315360000000ULL) {
				fprintf(
				    stderr,
				    "amqpd: --consumer-timeout wants milliseconds (0 = never, at "
				    "most 315360000000), got '%s'\n",
				    optarg);
				return 2;
			}
			b.cfg.consumer_timeout = v;
			break;
		}
		case OPT_CONSUMER_TIMEOUT_RESPONSE:
			if (strcmp(optarg, "close") != 0 &&
			    strcmp(optarg, "notify_consumer") != 0) {
				fprintf(stderr,
				        "amqpd: --consumer-timeout-response wants close or "
				        "notify_consumer, got '%s'\n",
				        optarg);
				return 2;
			}
			b.cfg.consumer_timeout_notify = strcmp(optarg, "notify_consumer") == 0;
			break;
		case OPT_AUTH_BACKENDS:
			b.cfg.auth.backend_names = optarg;
			break;
		case OPT_LOOPBACK_USERS:
			b.cfg.auth.loopback_users = strcmp(optarg, "none") == 0 ? "" : optarg;
			break;
		case OPT_DEFINITIONS:
			b.cfg.definitions_file = optarg;
			break;
		case OPT_AUTH_TIMEOUT:
		case OPT_LOGIN_FAILURE_DELAY: {
			uint64_t v;
			const char *name =
			    c == OPT_AUTH_TIMEOUT ? "--auth-timeout" : "--login-failure-delay";
			if (parse_ms(name, optarg, c == OPT_AUTH_TIMEOUT ? 1 : 0, &v) < 0)
				return 2;
			if (c == OPT_AUTH_TIMEOUT)
				b.cfg.auth.timeout_ms = (uint32_t)v;
			else
				b.cfg.auth.failure_delay_ms = (uint32_t)v;
			break;
		}
		case OPT_CERT_LOGIN_FROM:
			if (strcmp(optarg, "common_name") == 0) {
				b.cfg.auth.cert_login_from = CERT_LOGIN_CN;
			} else if (strcmp(optarg, "distinguished_name") == 0) {
				b.cfg.auth.cert_login_from = CERT_LOGIN_DN;
			} else if (strcmp(optarg, "subject_alternative_name") == 0) {
				b.cfg.auth.cert_login_from = CERT_LOGIN_SAN;
			} else {
				fprintf(
				    stderr,
				    "amqpd: --ssl-cert-login-from wants common_name, "
				    "distinguished_name or subject_alternative_name, got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case OPT_CERT_SAN_TYPE:
			if (strcasecmp(optarg, "dns") && strcasecmp(optarg, "email") &&
			    strcasecmp(optarg, "uri") && strcasecmp(optarg, "ip")) {
				fprintf(stderr,
				        "amqpd: --ssl-cert-login-san-type wants dns, email, uri or "
				        "ip, got '%s'\n",
				        optarg);
				return 2;
			}
			b.cfg.auth.cert_san_type = optarg;
			break;
		case OPT_CERT_SAN_INDEX: {
			uint64_t v;
			if (parse_ms("--ssl-cert-login-san-index", optarg, 0, &v) < 0)
				return 2;
			b.cfg.auth.cert_san_index = (unsigned)v;
			break;
		}
		case OPT_MGMT_LISTEN:
			if (strcmp(optarg, "none") == 0) {
				admin.disabled = true;
			} else if (admin.nlisten == ADMIN_MAX_LISTENERS) {
				fprintf(stderr, "amqpd: at most %d --management-listen options\n",
				        ADMIN_MAX_LISTENERS);
				return 2;
			} else {
				admin.listen[admin.nlisten++] = optarg;
			}
			break;
		case OPT_CONSOLE_DIR:
			admin.console_dir = optarg;
			break;
		case 'd':
			b.cfg.data_dir = optarg;
			break;
		case 'p':
			b.cfg.pid_file = optarg;
			break;
		case 'L': {
			int lv = log_parse_level(optarg);
			if (lv < 0) {
				fprintf(stderr,
				        "amqpd: unknown log level '%s' (error, warning, info, "
				        "debug)\n",
				        optarg);
				return 2;
			}
			log_set_level((enum log_level)lv);
			break;
		}
		case 'M':
			if (parse_bytes("--memory-high-watermark", optarg,
			                &b.cfg.mem_high_watermark) < 0)
				return 2;
			break;
		case 'D':
			if (parse_bytes("--disk-free-limit", optarg, &b.cfg.disk_free_limit) < 0)
				return 2;
			break;
		case 'Q':
			if (parse_bytes("--queue-memory-budget", optarg,
			                &b.cfg.queue_memory_budget) < 0)
				return 2;
			break;
		case 'o': {
			char err[300];
			if (plugin_option_check(optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "amqpd: --plugin-opt %s\n", err);
				return 2;
			}
			/* File-static: reachable until exit, whichever way main ends. */
			static const char **opts_seen;
			const char **n =
			    realloc(opts_seen, (size_t)(b.cfg.nplugin_opts + 1) * sizeof(*n));
			if (!n) {
				fprintf(stderr, "amqpd: out of memory\n");
				return 2;
			}
			opts_seen = b.cfg.plugin_opts = n;
			b.cfg.plugin_opts[b.cfg.nplugin_opts++] = optarg;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("amqpd %s (AMQP 0-9-1)\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "amqpd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	const struct tls_config *t = &b.cfg.tls;
	if (!b.cfg.nlisten_tls &&
	    (t->cert || t->key || t->key_password || t->ca || t->verify_peer ||
	     t->fail_if_no_peer_cert || t->min_version || t->ciphers || t->ciphersuites)) {
		fprintf(stderr, "amqpd: --tls-* options without --listen-tls: no listener would "
		                "use them\n");
		return 2;
	}
	log_info("starting amqpd %s; plugins from %s", PACKAGE_VERSION, b.cfg.plugin_dir);
	if (mkdir_p(b.cfg.data_dir) < 0) {
		log_error("data directory %s cannot be created: %s", b.cfg.data_dir,
		          strerror(errno));
		return 1;
	}
	if (lock_data_dir(&b) < 0)
		return 1;
	if (broker_init(&b) < 0 || broker_listen(&b) < 0) {
		broker_free(&b);
		return 1;
	}
	if (b.cfg.pid_file) {
		FILE *f = fopen(b.cfg.pid_file, "w");
		if (!f) {
			log_error("cannot write pid file %s: %s", b.cfg.pid_file, strerror(errno));
			broker_free(&b);
			return 1;
		}
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
	struct admin_server *adm = admin_start(&b, &admin);
	if (!adm) {
		broker_free(&b);
		return 1;
	}
	int rc = broker_run(&b);
	admin_stop(adm);
	broker_free(&b);
	if (b.cfg.pid_file)
		unlink(b.cfg.pid_file);
	return rc;
}
