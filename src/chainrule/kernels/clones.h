/* CLONES: wider vector units where the CPU has them (x86-64 with GCC or Clang on Linux: a
 * loop marked CLONES is compiled for each target and the best one is chosen when the module
 * loads); elsewhere nothing. */
#ifndef CHAINRULE_CLONES_H
#define CHAINRULE_CLONES_H

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#endif
