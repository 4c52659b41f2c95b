/* The library's identity for programs and bindings that load it at run time. */
#include <string.h>
#include "core/core.h"

const char *moedit_version(void) { return MOEDIT_VERSION; }

size_t moedit_sizeof(const char *type)
{
    static const struct { const char *name; size_t size; } types[] = {
        {"moedit_config", sizeof(moedit_config)},
        {"moedit_load_options", sizeof(moedit_load_options)},
        {"moedit_sample_options", sizeof(moedit_sample_options)},
        {"moedit_route", sizeof(moedit_route)},
        {"moedit_route_table", sizeof(moedit_route_table)},
        {"moedit_trace_header", sizeof(moedit_trace_header)},
    };
    for (size_t i = 0; type && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(type, types[i].name)) return types[i].size;
    return 0;
}
