/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_decode(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'decode' is not implemented yet\n");
    return 1;
}
