/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_npz_merge(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'npz_merge' is not implemented yet\n");
    return 1;
}
