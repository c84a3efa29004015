#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Checks the bash completion against 'ksmctl help': every verb is completed, every option
# is completed (also after each verb it is documented for), and the values of --json=.
# Usage: test-bash-completion.sh KSMCTL COMPLETION_FILE
set -uo pipefail
ksmctl=$1
source "$2"

failures=0
n=0
check() { # description, command...
    local description=$1
    shift
    n=$((n + 1))
    if "$@"; then
        echo "ok $n - $description"
    else
        echo "not ok $n - $description"
        failures=$((failures + 1))
    fi
}

# Prints what bash would offer for the command line "ksmctl WORDS...", the last word being
# the one completed (as bash splits it: '--json=sh' arrives as '--json' '=' 'sh').
complete_words() {
    COMP_WORDS=(ksmctl "$@")
    COMP_CWORD=$#
    COMP_LINE="ksmctl $*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _ksmctl ksmctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
}

offers() { # word, words...: does completing words offer word (or word= for options with values)?
    local word=$1
    shift
    # Not grep -q: it may exit before printf has written everything, and with pipefail
    # printf's SIGPIPE would fail the check although the word was offered.
    complete_words "$@" | grep -xE -- "$word=?" >/dev/null
}

help=$("$ksmctl" help) || { echo "not ok - ksmctl help failed"; exit 1; }
verbs=$(sed -n '/^Commands:/,/^$/p' <<<"$help" | awk 'NR > 1 && NF { print $1 }')
options=$(sed -n '/^Options:/,/^$/p' <<<"$help" | grep -oE -- '(^|[ ,])--?[a-z][a-z-]*' | tr -d ' ,' | sort -u)
[ -n "$verbs" ] && [ -n "$options" ] || { echo "not ok - no verbs or options found in 'ksmctl help'"; exit 1; }

for verb in $verbs; do
    check "verb $verb is completed" offers "$verb" ""
    check "verb $verb is completed from its first letter" offers "$verb" "${verb:0:1}"
done
for option in $options; do
    prefix=--
    [[ $option == --* ]] || prefix=-
    check "option $option is completed before a verb" offers "$option" "$prefix"
done

# "  --no-block   kick: ..." documents which verbs take an option.
while read -r option verb_list; do
    for verb in ${verb_list//,/ }; do
        check "option $option is completed after $verb" offers "$option" "$verb" --
    done
done < <(sed -n '/^Options:/,/^$/p' <<<"$help" |
         sed -nE 's/^  (--[a-z-]+)[^ ]* +([a-z, ]+): .*/\1 \2/p')

# The values of --json=, from "--json[=short|pretty]".
for value in $(grep -oE -- '--json\[=[a-z|]+\]' <<<"$help" | sed -E 's/.*=([a-z|]+)\]/\1/; s/\|/ /g'); do
    check "--json=$value is completed" offers "$value" status --json = ""
    check "--json=$value is completed from its first letter" offers "$value" status --json = "${value:0:1}"
done

check "no option of kick is offered after status" bash -c '! grep -qx -- --no-block <<<"$1"' _ \
    "$(complete_words status --)"
check "nothing is offered after a verb" test -z "$(complete_words status "")"

echo "1..$n"
[ "$failures" = 0 ]
