/*
 * shmem.h
 *		perfopt's shared-memory lifecycle (shmem.c), and the one error
 *		raised when the library was not preloaded, so that shared memory
 *		does not exist.
 */
#ifndef PERFOPT_SHMEM_H
#define PERFOPT_SHMEM_H

extern void perfopt_install_shmem_hooks(void);
extern void perfopt_require_preload(void);

#endif							/* PERFOPT_SHMEM_H */
