/*
 * main.c: command line, configuration and the one libevent loop everything
 * runs on (signals: lifecycle.c).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "pooler.h"
#include "log.h"
#include "config.h"
#include "auth.h"
#include "client.h"
#include "cancel.h"
#include "pool.h"
#include "net/net.h"
#include "ops/ops.h"
#include "replica/replica.h"

struct event_base *base;

static void
usage(FILE *f)
{
	fprintf(f,
			"perfopt-pooler: a PostgreSQL connection pooler enforcing pool_size, max_overflow,\n"
			"pool_timeout, pool_recycle and pool_pre_ping in front of the database.\n\n"
			"Usage: perfopt-pooler [-c FILE] [-v] [--help] [--version]\n\n"
			"  -c, --config FILE  configuration file (default ./perfopt-pooler.ini)\n"
			"  -v, --verbose      log more (repeat for debug)\n"
			"  -t, --check        check the configuration and exit\n"
			"  -h, --help         show this help and exit\n"
			"  -V, --version      show the version and exit\n\n"
			"Signals: SIGHUP reloads the configuration, SIGINT shuts down once running\n"
			"transactions are done (shutdown_timeout), SIGTERM shuts down at once.\n"
			"Admin console: the virtual database \"perfopt\" (admin_users, stats_users).\n\n"
			"See pooler/perfopt-pooler.ini for every setting.\n");
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"check", no_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	const char *file = "perfopt-pooler.ini";
	int			o,
				verbose = 0;
	bool		check = false;

	while ((o = getopt_long(argc, argv, "c:vthV", opts, NULL)) != -1)
	{
		switch (o)
		{
			case 'c':
				file = optarg;
				break;
			case 'v':
				verbose++;
				break;
			case 't':
				check = true;
				break;
			case 'h':
				usage(stdout);
				return 0;
			case 'V':
				printf("perfopt-pooler %s\n", POOLER_VERSION);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "perfopt-pooler: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_load(file) < 0)
		return 1;
	cfg.verbose += verbose;
	verbose_extra = verbose;
	if (cfg.auth_file && userlist_load(cfg.auth_file) < 0)
		return 1;
	if (tls_init() < 0)
		return 1;
	if (check)
	{
		printf("perfopt-pooler: %s is valid\n", file);
		tls_shutdown();
		return 0;
	}
	log_open(cfg.logfile);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	base = event_base_new();
	if (!base)
	{
		log_error("cannot create the event loop");
		return 1;
	}
	write_batch_start();
	client_console = &admin_console;	/* the admin console's operations */
	/*
	 * The metrics endpoint first: once the pooler's own port accepts, a
	 * scrape must find the endpoint there too (tests and supervisors treat
	 * the pooler's port as "started").
	 */
	if (metrics_start() < 0)
		return 1;
	if (listener_start() < 0)
	{
		metrics_stop();
		return 1;
	}
	/* signal handlers as soon as the port accepts: a SIGHUP must not kill */
	clients_tick_start();
	lifecycle_start(listener_stop);
	janitor_start();
	health_start();
	log_info("perfopt-pooler %s listening (port %d, %s mode)", POOLER_VERSION, cfg.listen_port,
			 cfg.ps.pool_mode == MODE_SESSION ? "session" : "transaction");
	/* one batch of events at a time, then the client writes it produced */
	while (event_base_loop(base, EVLOOP_ONCE) == 0)
	{
		conn_flush_pending();
		if (event_base_got_exit(base) || event_base_got_break(base))
			break;
	}
	listener_stop();
	metrics_stop();
	client_shutdown_all();
	pool_shutdown();
	janitor_stop();
	cancel_shutdown();
	tls_shutdown();
	write_batch_stop();
	event_base_free(base);
	log_info("perfopt-pooler stopped");
	return 0;
}
