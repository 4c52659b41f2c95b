/* OpenMP's waits on a shared machine. libgomp spins ~300 000 rounds at every
   barrier before sleeping: the fastest policy while the cores are free, and
   many times the slowest as soon as another busy process wants one of them
   (the spinning thread holds the core its partner needs). Rather than trade
   one world for the other with a shorter spin, the CLI keeps libgomp's
   default and makes every forward adaptive (core/busy.c): before each one
   it counts the other runnable tasks and runs on the cores they leave free,
   so two spinning threads never share a core with a competitor for long.
   Measured in docs/performance.md ("Shared machines"). Programs embedding
   libmoedit choose their own policy (moedit_set_adaptive_threads). */
#include "cli/cli.h"

void cli_omp_defaults(void)
{
    moedit_set_adaptive_threads(1);
}
