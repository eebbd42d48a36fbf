/*
 * hash_file.h
 *		Saving a shared hash table of fixed-size entries at a clean shutdown
 *		and reading it back at startup (hash_file.c).
 */
#ifndef PERFOPT_HASH_FILE_H
#define PERFOPT_HASH_FILE_H

#include "utils/hsearch.h"

/* an entry read back, to re-initialize what it holds that is not data */
typedef void (*hash_file_fixup) (void *entry);

extern void hash_file_save(HTAB *hash, Size entry_size, uint32 magic, const char *path);
extern void hash_file_load(HTAB *hash, Size entry_size, uint32 magic, const char *path,
						   hash_file_fixup fixup);

#endif							/* PERFOPT_HASH_FILE_H */
