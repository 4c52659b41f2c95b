/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_forward(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'forward' is not implemented yet\n");
    return 1;
}
int cmd_bench(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'bench' is not implemented yet\n");
    return 1;
}
