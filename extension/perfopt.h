/*
 * perfopt.h
 *		What the capabilities of perfopt share: the shared-memory lifecycle
 *		(shmem.c) and the one error raised when the library was not
 *		preloaded.
 */
#ifndef PERFOPT_H
#define PERFOPT_H

extern void perfopt_install_shmem_hooks(void);
extern void perfopt_require_preload(void);

#endif							/* PERFOPT_H */
