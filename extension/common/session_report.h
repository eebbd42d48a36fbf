/*
 * session_report.h
 *		The session state a backend holds between transactions, reported to
 *		the client (a pooler) as the setting perfopt.session_state.
 */
#ifndef PERFOPT_SESSION_REPORT_H
#define PERFOPT_SESSION_REPORT_H

/* define perfopt.session_state and chain the hooks that keep it true */
extern void session_report_install_hooks(void);

#endif							/* PERFOPT_SESSION_REPORT_H */
