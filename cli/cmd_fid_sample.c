/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_fid_sample(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'fid_sample' is not implemented yet\n");
    return 1;
}
