/*
 * advisor_writes.h
 *		Each table's writes since the advisor began to capture it
 *		(advisor_writes.c).
 */
#ifndef PERFOPT_ADVISOR_WRITES_H
#define PERFOPT_ADVISOR_WRITES_H

typedef struct AdvisorTableWrites
{
	int64		writes;			/* rows inserted, updated and deleted */
	int64		updates;		/* rows updated */
	int64		hot_updates;	/* of which heap-only (no index entry) */
} AdvisorTableWrites;

extern Size advisor_writes_shmem_size(void);
extern void advisor_writes_request_lock(void);
extern void advisor_writes_shmem_init(void);
extern void advisor_writes_save(void);
extern void advisor_writes_load(void);
extern void advisor_writes_note_table(Oid relid);
extern void advisor_writes_counted(Oid relid, AdvisorTableWrites *counted, double *window_us);
extern void advisor_writes_reset(void);

#endif							/* PERFOPT_ADVISOR_WRITES_H */
