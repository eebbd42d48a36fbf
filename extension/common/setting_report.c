/*
 * setting_report.c
 *		perfopt.report_settings (bool, per session, default off).  When on,
 *		every setting a user can change with SET (contexts USERSET and
 *		SUSET) is reported to the client with ParameterStatus, as
 *		PostgreSQL reports client_encoding or TimeZone: at login when given
 *		in the startup packet, and after every change from then on,
 *		including a SET LOCAL and its revert at the end of the transaction.
 *		A connection pooler asks for it in its own startup packet to learn
 *		each client's session settings (search_path, statement_timeout ...)
 *		and carry them to the client's next server connection.
 *
 *		The report is PostgreSQL's own: this file only adds GUC_REPORT to
 *		the settings' flags in this backend, and takes it off again for the
 *		ones it marked when the setting goes off.  Flags are per backend,
 *		so only sessions that ask pay for the extra messages.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"

#include "common/setting_report.h"

#define REPORT_GUC_NAME "perfopt.report_settings"

static bool report_settings = false;

/* names of the settings this backend marked, sorted, in TopMemoryContext */
static char **marked = NULL;
static int	nmarked = 0;

static bool
markable(const struct config_generic *conf)
{
	/* GUC_NO_RESET_ALL: transaction_isolation and the like, not session state */
	if (conf->flags & (GUC_REPORT | GUC_NO_SHOW_ALL | GUC_NO_RESET_ALL | GUC_CUSTOM_PLACEHOLDER))
		return false;
	if (conf->context != PGC_USERSET && conf->context != PGC_SUSET)
		return false;
	return strcmp(conf->name, REPORT_GUC_NAME) != 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Mark every reportable setting.  GUC_NEEDS_REPORT makes the current value
 * go out with the next report (at once when this runs from the startup
 * packet: the login reports every GUC_REPORT setting).
 */
static void
mark_all(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	marked = MemoryContextAlloc(TopMemoryContext, sizeof(char *) * Max(n, 1));
	nmarked = 0;
	for (int i = 0; i < n; i++)
	{
		if (!markable(vars[i]))
			continue;
		vars[i]->flags |= GUC_REPORT;
		vars[i]->status |= GUC_NEEDS_REPORT;
		marked[nmarked++] = MemoryContextStrdup(TopMemoryContext, vars[i]->name);
	}
	qsort(marked, nmarked, sizeof(char *), cmp_name);
}

/* Take GUC_REPORT off what mark_all marked, and forget it. */
static void
unmark_all(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		const char *name = vars[i]->name;

		if (bsearch(&name, marked, nmarked, sizeof(char *), cmp_name))
			vars[i]->flags &= ~GUC_REPORT;
	}
	for (int i = 0; i < nmarked; i++)
		pfree(marked[i]);
	pfree(marked);
	marked = NULL;
	nmarked = 0;
}

/* An assign hook must not fail: only flags and palloc in TopMemoryContext. */
static void
assign_report_settings(bool newval, void *extra)
{
	if (newval && !marked)
		mark_all();
	else if (!newval && marked)
		unmark_all();
}

void
setting_report_define_guc(void)
{
	DefineCustomBoolVariable(REPORT_GUC_NAME,
							 "Report every user-settable setting to the client with ParameterStatus.",
							 "For connection poolers: set it in the startup packet to learn each "
							 "session's settings (search_path, statement_timeout ...) as they change.",
							 &report_settings,
							 false,
							 PGC_USERSET, 0,
							 NULL, assign_report_settings, NULL);
}
