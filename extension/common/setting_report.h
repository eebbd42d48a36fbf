/*
 * setting_report.h
 *		perfopt.report_settings: a backend that asks for it reports every
 *		user-settable setting to its client with ParameterStatus
 *		(setting_report.c).
 */
#ifndef PERFOPT_SETTING_REPORT_H
#define PERFOPT_SETTING_REPORT_H

extern void setting_report_define_guc(void);

#endif							/* PERFOPT_SETTING_REPORT_H */
