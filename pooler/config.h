/*
 * config.h: the settings in effect (cfg) and loading them: config.c parses
 * the file, config_keys.c walks the table of [pooler] settings.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include "pooler.h"

extern settings cfg;
int			config_load(const char *file);
database   *config_find_database(const char *name);
void		config_defaults(void);	/* cfg as no file sets it */
void		config_free(settings *s);
void		config_free_database(database *db);
const char *config_tsa_name(enum target_attrs t);
const char *config_causal_name(int c);
void		config_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool config_reloading;	/* errors go to the log and config_error */
extern char config_error[1024];	/* the first error of the last reload */

/* config_keys.c */
void		config_show(void (*row) (void *arg, const char *key, const char *value,
									 const char *dflt, bool changeable), void *arg);
void		config_keep_fixed(settings *now, const settings *running);

#endif
