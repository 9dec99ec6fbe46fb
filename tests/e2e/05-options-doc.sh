#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#
# The options as documented are the options as built: for every command and
# verb, docs/config.md's tables list exactly the options its generated
# --help lists, with the same defaults (tests/e2e/options_doc.py). Also that
# every --help is generated: it exits 0, prints "Usage: vigil ..." and lists
# -h/--help, which only the generated usage does.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

python3 "$E2E_ROOT/tests/e2e/options_doc.py" "$VIGIL" "$E2E_ROOT/docs/config.md" \
	>"$E2E_TMP/doc.out" 2>"$E2E_TMP/doc.err" || show_file "options_doc.py stderr" "$E2E_TMP/doc.err"
while IFS='|' read -r status what; do
	case $status in
	ok) ok "$what" ;;
	"not ok") not_ok "$what" ;;
	\#) note "$what" ;;
	cmd) echo "$what" >>"$E2E_TMP/commands" ;;
	esac
done <"$E2E_TMP/doc.out"
[ -s "$E2E_TMP/doc.out" ] || not_ok "options_doc.py checked something"

# Every command and verb: --help is the generated usage.
while read -r cmd; do
	# shellcheck disable=SC2086 # "log query" is two words
	out=$("$VIGIL" $cmd --help 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ] && [[ $out == "Usage: vigil $cmd "* ]] && grep -q -- '-h, --help' <<<"$out"; then
		ok "vigil $cmd --help: exit 0, the generated usage"
	else
		not_ok "vigil $cmd --help: exit 0, the generated usage (exit $rc: $(head -c 120 <<<"$out"))"
	fi
done <"$E2E_TMP/commands"

e2e_finish
