#!/bin/sh
# Shell completion: the bash script completes commands, each command's
# options and the modes the plugins provide; the zsh script parses.
. "$top_srcdir/tests/cli/setup.sh"
plan 10

# complete WORDS...: what bash completes for the last word.
complete_words() {
	bash -c '
mailmode() { "$MAILMODE" --config "$CONF" "$@"; }
. "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
_mailmode
printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' sh "$top_srcdir/completion/mailmode" "$@"
}
export MAILMODE CONF

is "$(complete_words mailmode sta)" "status " "a command"
is "$(complete_words mailmode setup a.test --mo)" "--mode " "an option of that command"
is "$(complete_words mailmode setup a.test --mode '')" "example twin " "--mode: the modes the plugins provide"
is "$(complete_words mailmode switch a.test --accept)" "--accept-conflict " "switch takes --accept-conflict"
is "$(complete_words mailmode help swi)" "switch " "help completes the commands"
is "$(complete_words mailmode tenant lo)" "login logout " "tenant: its actions"
is "$(complete_words mailmode runbook run rb.ini --sk) $(complete_words mailmode runbook report 3 --ht)" "--skip-failed  --html " "runbook: --skip-failed, --html"
is "$(complete_words mailmode prep)" "prepare " "prepare is a command"
is "$(complete_words mailmode switch a.test --max)" "--max-settle " "switch takes --max-settle"
if command -v zsh >/dev/null 2>&1; then
	run zsh -n "$top_srcdir/completion/_mailmode"
	is "$rc:$err" "0:" "the zsh script parses"
else
	ok 0 "# SKIP zsh is not installed"
fi
