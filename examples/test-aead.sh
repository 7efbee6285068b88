#!/usr/bin/env bash
# test-aead.sh TARS_AEAD: end-to-end test of the tars-aead example.
# Round trips (empty, text, 1 MiB of binary), then rejection of tampered,
# truncated, extended and wrong-key input, with no plaintext output on
# rejection.  Exits non-zero on the first failure.
set -euo pipefail

bin=${1:?usage: test-aead.sh TARS_AEAD}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "test-aead: FAIL: $*" >&2
	exit 1
}

# flip FILE OFFSET: invert the low bit of one byte in place.
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\x$(printf %02x $((b ^ 1)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# rejected KEY INPUT WHAT: decryption must fail, say why, and print nothing.
rejected() {
	if "$bin" decrypt "$1" <"$2" >"$tmp/out" 2>"$tmp/err"; then
		fail "$3 accepted"
	fi
	[ ! -s "$tmp/out" ] || fail "$3: plaintext written on failure"
	grep -q '^tars-aead: ' "$tmp/err" || fail "$3: no error message"
}

"$bin" keygen "$tmp/key"
[ "$(stat -c %s "$tmp/key")" = 32 ] || fail "key file is not 32 bytes"
[ "$(stat -c %a "$tmp/key")" = 600 ] || fail "key file is not mode 600"
cp "$tmp/key" "$tmp/key.orig"
if "$bin" keygen "$tmp/key" 2>/dev/null; then
	fail "keygen overwrote an existing key"
fi
cmp -s "$tmp/key" "$tmp/key.orig" || fail "existing key changed"

: >"$tmp/empty"
printf 'attack at dawn\n' >"$tmp/text"
head -c 1048576 /dev/urandom >"$tmp/binary"
for m in empty text binary; do
	"$bin" encrypt "$tmp/key" <"$tmp/$m" >"$tmp/$m.sealed"
	want=$(( $(stat -c %s "$tmp/$m") + 40 ))
	[ "$(stat -c %s "$tmp/$m.sealed")" = "$want" ] ||
		fail "$m: sealed size is not nonce + message + tag"
	"$bin" decrypt "$tmp/key" <"$tmp/$m.sealed" >"$tmp/$m.out"
	cmp -s "$tmp/$m" "$tmp/$m.out" || fail "$m: round trip differs"
done

! grep -q 'attack at dawn' "$tmp/text.sealed" || fail "plaintext visible in output"
"$bin" encrypt "$tmp/key" <"$tmp/text" >"$tmp/text.sealed2"
! cmp -s "$tmp/text.sealed" "$tmp/text.sealed2" || fail "nonce reused"

# One flipped bit anywhere: nonce, ciphertext, tag.
size=$(stat -c %s "$tmp/text.sealed")
for off in 0 23 24 30 $((size - 17)) $((size - 16)) $((size - 1)); do
	cp "$tmp/text.sealed" "$tmp/bad"
	flip "$tmp/bad" "$off"
	rejected "$tmp/key" "$tmp/bad" "bit flipped at offset $off"
done
cp "$tmp/binary.sealed" "$tmp/bad"
flip "$tmp/bad" 500000
rejected "$tmp/key" "$tmp/bad" "1 MiB message with a bit flipped"

head -c $((size - 1)) "$tmp/text.sealed" >"$tmp/bad"
rejected "$tmp/key" "$tmp/bad" "truncated input"
head -c 39 "$tmp/text.sealed" >"$tmp/bad"
rejected "$tmp/key" "$tmp/bad" "input shorter than nonce + tag"
cat "$tmp/text.sealed" "$tmp/empty.sealed" >"$tmp/bad"
rejected "$tmp/key" "$tmp/bad" "input with bytes appended"

"$bin" keygen "$tmp/other"
rejected "$tmp/other" "$tmp/text.sealed" "wrong key"
head -c 31 "$tmp/key" >"$tmp/short"
rejected "$tmp/short" "$tmp/text.sealed" "31-byte key"

echo "test-aead: ok"
