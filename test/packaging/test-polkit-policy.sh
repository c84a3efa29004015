#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The polkit policy is valid against polkit's policyconfig DTD and has the defaults docs/design.md (Authorization) gives.
set -euo pipefail
policy=$1
dtd=/usr/share/polkit-1/policyconfig-1.dtd
[ -f "$dtd" ] || { echo "SKIP: $dtd missing (package polkitd)"; exit 77; }
xmllint --noout --dtdvalid "$dtd" "$policy"
for expected in '<allow_any>auth_admin</allow_any>' '<allow_inactive>auth_admin</allow_inactive>' \
                '<allow_active>auth_admin_keep</allow_active>' '<action id="org.kata.ksmthrottler.kick">' \
                '<action id="org.kata.ksmthrottler.read-savings">' '<allow_active>yes</allow_active>'; do
    grep -qF "$expected" "$policy" || { echo "FAIL: $policy lacks $expected"; exit 1; }
done
echo "policy valid"
