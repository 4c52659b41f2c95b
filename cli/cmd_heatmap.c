/* Placeholder until its issue lands. */
#include <stdio.h>
#include "cli/cli.h"

int cmd_heatmap(int argc, char **argv)
{
    fprintf(stderr, "moedit: 'heatmap' is not implemented yet\n");
    return 1;
}
