#!/usr/bin/env bash
# qkv chat on a real terminal: tmux gives it one (send-keys types, capture-pane
# reads the screen). Checks the prompt, a reply (the same one a pipe gets),
# Ctrl-C stopping an endless reply without ending the program, /reset and /exit.
# Arguments: the qkv executable, the models folder.
set -uo pipefail
qkv=$1 models=$2
model="$models/arch/qwen3-like.gguf"
command -v tmux >/dev/null || { echo "FAIL: tmux is not installed (scripts/setup.sh installs it)"; exit 1; }
sock="qkv-chat-test-$$"
tm() { tmux -L "$sock" "$@"; }
work=$(mktemp -d)
trap 'tm kill-server 2>/dev/null; rm -rf "$work"' EXIT
screen() { tm capture-pane -p -t chat -S -100; }
wait_for() {  # wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 $((seconds * 10))); do "$@" && return 0; sleep 0.1; done
  echo "FAIL: $what"; echo "--- screen:"; screen; exit 1
}
# Checks evaluated on each try (wait_for's COMMAND):
prompts_at_least() { [ "$(screen | grep -c '^>')" -ge "$1" ]; }
has() { screen | grep -qF -- "$1"; }
has_twice() { [ "$(screen | grep -cF -- "$1")" -ge 2 ]; }
reply_started() { [ "$(screen | grep -v '^>' | grep -v '^qkv chat' | grep -c .)" -ge 1 ]; }

# What the reply is through a pipe (greedy: the same on the terminal).
reply=$(printf 'Hello there\n' | "$qkv" chat -m "$model" --temp 0 -n 12 -c 512)
[ -n "$reply" ] || { echo "FAIL: no reply through a pipe"; exit 1; }
first=${reply:0:30}

tm new-session -d -s chat -x 220 -y 60 \
  "'$qkv' chat -m '$model' --temp 0 -n 12 -c 512; echo \"EXIT=\$?\" > '$work/status'; sleep 60"
wait_for "the first prompt" 30 prompts_at_least 1
tm send-keys -t chat "Hello there" Enter
wait_for "the reply '$first'" 30 has "$first"
wait_for "a second prompt" 10 prompts_at_least 2
tm send-keys -t chat "/reset" Enter
tm send-keys -t chat "Hello there" Enter
wait_for "the same reply after /reset" 30 has_twice "$first"
tm send-keys -t chat "/exit" Enter
wait_for "exit status 0" 10 grep -qs "EXIT=0" "$work/status"
tm kill-session -t chat

# An endless reply (no end of text, the context shifts): Ctrl-C stops it, the program goes on.
rm -f "$work/status"
tm new-session -d -s chat -x 220 -y 60 \
  "'$qkv' chat -m '$model' --temp 0 --ignore-eos -c 128; echo \"EXIT=\$?\" > '$work/status'; sleep 60"
wait_for "the first prompt" 30 prompts_at_least 1
tm send-keys -t chat "Tell me everything" Enter
wait_for "the reply to start" 30 reply_started
sleep 1
tm send-keys -t chat C-c
wait_for "the prompt after Ctrl-C" 10 prompts_at_least 2
[ -e "$work/status" ] && { echo "FAIL: Ctrl-C ended the program"; cat "$work/status"; exit 1; }
tm send-keys -t chat "/exit" Enter
wait_for "exit status 0 after Ctrl-C" 10 grep -qs "EXIT=0" "$work/status"
echo "chat on a terminal: ok"
