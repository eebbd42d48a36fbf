/*
 * perfopt.c
 *		Entry point of the perfopt extension: _PG_init defines the settings,
 *		asks for shared memory and has each capability chain its hooks to
 *		whatever was installed before.  The capabilities live in folders:
 *		stats/ (query statistics, slow log), advisor/ (index advisor),
 *		cache/ (result cache), replica/ (the WAL resource manager, commit
 *		positions for clients), and common/ what they share (settings,
 *		nesting levels).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/queryjumble.h"

#include "advisor/advisor_capture.h"
#include "advisor/hypo_hide.h"
#include "advisor/hypo_index.h"
#include "cache/cache.h"
#include "common/guc.h"
#include "common/nesting.h"
#include "common/session_report.h"
#include "common/setting_report.h"
#include "replica/replica.h"
#include "shmem.h"
#include "stats/stats_hooks.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Which hooks each capability chains, in the order they are installed.  A
 * hook installed later runs first and chains to the ones installed before
 * it: the result cache sees a statement first (a hit is answered without
 * calling what lies below), the statistics last, closest to the planner and
 * executor they measure.  The order decides behaviour.
 */
static void (*const install_hooks_in_order[]) (void) = {
	/* ProcessUtility, transaction callbacks: perfopt.session_state */
	session_report_install_hooks,
	/* ProcessUtility, transaction callbacks: perfopt.commit_lsn */
	commit_lsn_install_hooks,
	/* post_parse_analyze, planner, ExecutorStart/Run/Finish/End, ProcessUtility */
	stats_install_hooks,
	/* get_relation_info, explain_get_index_name: hypothetical indexes */
	hypo_index_install_hooks,
	/* get_relation_info, around the above: existing indexes hidden (what-if) */
	hypo_hide_install_hooks,
	/* ExecutorEnd: the index advisor's view of the workload */
	advisor_capture_install_hooks,
	/* planner, ExecutorStart/Run/End, ProcessUtility, ExplainOneQuery */
	cache_install_hooks,
};

void
_PG_init(void)
{
	/*
	 * Without preloading there is no shared memory to keep anything in; the
	 * SQL functions then raise an error that says so.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	perfopt_define_gucs();
	setting_report_define_guc();
	EnableQueryId();
	perfopt_install_shmem_hooks();
	replica_register_rmgr();
	nesting_install_callbacks();
	for (int i = 0; i < lengthof(install_hooks_in_order); i++)
		install_hooks_in_order[i] ();
}
