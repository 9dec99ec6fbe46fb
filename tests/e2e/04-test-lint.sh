#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The suite's own checks can fail: no `check DESC [ a ] && [ b ]`, where the
# shell would run `&& [ b ]` after the check and drop its result
# (tests/e2e/check_lint.py). And the finder itself finds that pattern.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

LINT=$E2E_ROOT/tests/e2e/check_lint.py
out=$(python3 "$LINT" "$E2E_ROOT"/tests/e2e/*.sh)
rc=$?
check "every check in tests/e2e/*.sh is one command whose status is the result" [ "$rc" -eq 0 ]
[ -z "$out" ] || note "$out"

printf '%s\n' 'check "x and y" [ "$x" = 1 ] && [ "$y" = 2 ]' 'check_sh "x and y" '\''[ "$x" = 1 ] && [ "$y" = 2 ]'\' \
	'check "z" \' '	[ "$z" = 1 ] || true' >"$E2E_TMP/bad.sh"
found=$(python3 "$LINT" "$E2E_TMP/bad.sh" | cut -d: -f2 | paste -sd,)
check "the finder flags a compound check and its continued form, not check_sh (lines $found)" [ "$found" = "1,3" ]

e2e_finish
