/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_inspect(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'inspect' is not implemented yet\n");
    return 1;
}
int cmd_convert(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'convert' is not implemented yet\n");
    return 1;
}
