#!/usr/bin/env bash
# The man page moedit(1) from docs/moedit.1.in, its COMMANDS section made from
# the program's own help: the command list of `moedit --help` and, per
# command, the synopsis and flag table of `moedit COMMAND --help` (cli/args.c
# prints each flag as name, value name, two spaces or more, description).
# So the page lists exactly the flags the program takes.
#
#   scripts/man_page.sh build/moedit > docs/moedit.1
#
# The test man_page_current (CMakeLists.txt) fails when docs/moedit.1 is not
# what this prints for the built program.
set -euo pipefail
bin=${1:?usage: scripts/man_page.sh MOEDIT_BINARY [TEMPLATE]}
template=${2:-$(dirname "$0")/../docs/moedit.1.in}

# roff text: backslashes escaped, hyphens as \- (options copy as typed), the
# ellipsis as a groff escape (ASCII input), a line never starting with a
# control character
roff() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e 's/…/\\[u2026]/g' -e "s/^\([.']\)/\\\\\&\1/"; }

commands() {
    printf '.SH COMMANDS\n'
    "$bin" --help | awk '/^  [a-z]/ { name = $1; $1 = ""; sub(/^ +/, ""); print name "\t" $0 }' |
    while IFS=$'\t' read -r cmd summary; do
        help=$("$bin" "$cmd" --help)
        printf '.SS %s\n' "$cmd"
        printf '%s%s.\n' "$(printf '%s' "${summary:0:1}" | tr '[:lower:]' '[:upper:]')" "${summary:1}" | roff
        printf '.PP\n.B moedit %s\n' "$cmd"
        printf '%s\n' "$help" | sed -n '1s/^usage: moedit [^ ]* //p' | roff
        printf '%s\n' "$help" | sed -n '2,$p' | awk '
            function roff(s) {
                gsub(/\\/, "\\\\e", s); gsub(/-/, "\\\\-", s); gsub(/…/, "\\\\[u2026]", s)
                return s ~ /^[.\047]/ ? "\\&" s : s
            }
            /^  --/ {
                name = substr($0, 3, 18); sub(/ +$/, "", name)
                rest = substr($0, 22)
                arg = ""
                if (rest !~ /^ /) { split(rest, part, /  +/); arg = part[1]; rest = substr(rest, length(arg) + 1) }
                sub(/^ +/, "", rest)
                print ".TP"
                print (arg == "" ? ".B " roff(name) : ".BI \"" roff(name) " \" \"" roff(arg) "\"")
                print roff(rest)
            }'
    done
}

section=$(commands)
while IFS= read -r line; do
    if [ "$line" = "@COMMANDS@" ]; then printf '%s\n' "$section"; else printf '%s\n' "$line"; fi
done < "$template"
