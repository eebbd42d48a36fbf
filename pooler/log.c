/*
 * log.c: the pooler's log lines, to stderr or to logfile.  Nothing here ever
 * receives a password: callers log names and reasons only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "pooler.h"

static FILE *logfp;

void
log_open(const char *file)
{
	if (file && *file)
	{
		FILE	   *f = fopen(file, "a");

		if (f)
		{
			setvbuf(f, NULL, _IOLBF, 0);
			logfp = f;
			return;
		}
		fprintf(stderr, "perfopt-pooler: cannot open logfile %s, logging to stderr\n", file);
	}
	logfp = stderr;
}

void
log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = {"ERROR", "WARNING", "LOG", "DEBUG"};
	char		ts[32];
	struct timeval tv;
	struct tm	tm;
	va_list		ap;

	if (!logfp)
		logfp = stderr;
	if (level == LOG_INFO && cfg.verbose < 0)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(logfp, "%s.%03d %s ", ts, (int) (tv.tv_usec / 1000), names[level]);
	va_start(ap, fmt);
	vfprintf(logfp, fmt, ap);
	va_end(ap);
	fputc('\n', logfp);
}
