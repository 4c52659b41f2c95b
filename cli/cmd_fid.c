/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_fid(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'fid' is not implemented yet\n");
    return 1;
}
