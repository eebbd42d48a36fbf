/*
 * hash_file.c
 *		Owns the file format in which the index advisor's shared tables
 *		(its captured statements, its tables' write counts) outlive a clean
 *		restart: a header (magic, entry size, count) and the entries as
 *		they are in shared memory.
 *
 * Called only in the postmaster, with no backend running: at a clean
 * shutdown (save) and at startup, before any backend (load), so no lock is
 * taken.  The file is written under a temporary name and renamed, and is
 * removed once read: after a crash there is none, as for the statistics
 * themselves.  A file written by another build (another entry size) is
 * ignored with a LOG line; nothing here raises an error.
 */
#include "postgres.h"

#include <unistd.h>

#include "storage/fd.h"

#include "common/hash_file.h"

typedef struct HashFileHeader
{
	uint32		magic;
	uint32		entry_size;
	int64		count;
} HashFileHeader;

void
hash_file_save(HTAB *hash, Size entry_size, uint32 magic, const char *path)
{
	HashFileHeader header = {magic, (uint32) entry_size, 0};
	HASH_SEQ_STATUS seq;
	void	   *e;
	FILE	   *file;
	bool		failed;
	char		tmp[MAXPGPATH];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	file = AllocateFile(tmp, PG_BINARY_W);
	if (file == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
		return;
	}
	header.count = hash_get_num_entries(hash);
	failed = fwrite(&header, sizeof(header), 1, file) != 1;
	hash_seq_init(&seq, hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (!failed && fwrite(e, entry_size, 1, file) != 1)
			failed = true;
	if (FreeFile(file) != 0 || failed)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
		unlink(tmp);
		return;
	}
	(void) durable_rename(tmp, path, LOG);
}

void
hash_file_load(HTAB *hash, Size entry_size, uint32 magic, const char *path,
			   hash_file_fixup fixup)
{
	HashFileHeader header;
	char	   *entry = palloc(entry_size);
	FILE	   *file;
	int64		i;

	file = AllocateFile(path, PG_BINARY_R);
	if (file == NULL)
		return;					/* none, or a crash came first */
	if (fread(&header, sizeof(header), 1, file) != 1 ||
		header.magic != magic || header.entry_size != entry_size)
		ereport(LOG,
				(errmsg("ignoring perfopt's file \"%s\": written by another build",
						path)));
	else
	{
		for (i = 0; i < header.count && fread(entry, entry_size, 1, file) == 1; i++)
		{
			bool		found;
			void	   *e = hash_search(hash, entry, HASH_ENTER_NULL, &found);

			if (e == NULL)
				break;			/* the table was made smaller */
			memcpy(e, entry, entry_size);
			if (fixup)
				fixup(e);
		}
	}
	FreeFile(file);
	unlink(path);
	pfree(entry);
}
