/*
 * fuzz_config.c: libFuzzer target for the configuration file: INI syntax
 * (libinih), every [pooler] key and its value check, and the [databases]
 * lines in PgBouncer's "key=value 'quoted ''value'''" syntax with
 * per-database pool settings.  The input is the whole file, read by the
 * real config_load() from an in-memory file.  Host names resolve only when
 * numeric (fuzz_common.c), so nothing reaches a DNS server.
 *
 * Checked: a file that loads has at least one database, each with a host,
 * a port in 1..65535, min_pool_size <= pool_size and a valid pool mode,
 * and a TLS mode that needs certificate or CA files names them.
 * What a successful load allocated is freed again, so the leak check
 * watches the parser, not the harness.
 */
#include "config.c"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_base();
	return 0;
}

static void
free_settings(void)
{
	config_free(&cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		path[64];
	int			fd = fuzz_memfile(data, size, path);
	int			saved = fuzz_quiet_stderr();

	if (config_load(path) == 0)
	{
		FUZZ_ASSERT(cfg.databases != NULL);
		for (database *db = cfg.databases; db; db = db->next)
		{
			FUZZ_ASSERT(db->name && db->nhosts >= 1 && db->nhosts <= MAX_HOSTS);
			for (int i = 0; i < db->nhosts; i++)
			{
				db_host    *h = &db->hosts[i];

				FUZZ_ASSERT(h->name && h->db == db && h->ix == i);
				FUZZ_ASSERT(h->port >= 1 && h->port <= 65535);
				FUZZ_ASSERT(h->addrlen > 0 && h->addrlen <= sizeof(h->addr));
			}
			FUZZ_ASSERT(db->ps.min_pool_size <= db->ps.pool_size);
			FUZZ_ASSERT(db->ps.pool_mode == MODE_SESSION || db->ps.pool_mode == MODE_TRANSACTION);
		}
		FUZZ_ASSERT(cfg.listen_port >= 1 && cfg.listen_port <= 65535);
		/* a TLS mode that needs files never loads without them */
		FUZZ_ASSERT(cfg.client_tls_mode == CLIENT_TLS_DISABLE ||
					(cfg.client_tls_cert_file.path && cfg.client_tls_key_file.path));
		FUZZ_ASSERT(cfg.server_tls_mode < SERVER_TLS_VERIFY_CA || cfg.server_tls_ca_file.path);
	}
	fuzz_restore_stderr(saved);
	free_settings();
	fuzz_memfile_close(fd);
	return 0;
}
