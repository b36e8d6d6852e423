#!/usr/bin/env bash
# make.sh makes the data directory that e2e/upgrade_test.go upgrades: a
# centre as the previous release of medfed left it, from before data
# directories carried a FORMAT file (format 1). It builds medfed at commit
# OLD (below) in a temporary git worktree and, with that binary and
# centre.yaml, has a hospital found a one-member federation (federation
# init, install), run its node on 127.0.0.1 (ports the system picks), add
# records for three made-up patients (by pseudonym: a federation of one
# centre has no pseudonym key, which takes two holders), issue staff
# credentials, register an EHR (medfed client add), attest a patient's key
# and submit their consent contract, and stop the node with SIGTERM, which
# checkpoints every SQLite file. It writes beside itself:
#
#   st-elsewhere.tar.gz  the data directory (about 160 KB, 10 KB packed)
#   records.txt          INDEX REPLACES PSEUDONYM PAYLOAD of each record as
#                        added (REPLACES: the index it amends, or 0)
#   old-check.txt        what the old medfed's "medfed check" said of it
#
# Run it from anywhere in a clone that has commit OLD, with go, git and
# GNU tar: bash e2e/testdata/upgrade/make.sh
set -euo pipefail

OLD=4d44063 # the last commit CI passed before the data directory's format

here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
work=$(mktemp -d)
node=
cleanup() {
	if [ -n "$node" ] && kill -0 "$node" 2>/dev/null; then
		kill -KILL "$node"
	fi
	git -C "$repo" worktree remove --force "$work/src" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

git -C "$repo" worktree add --detach "$work/src" "$OLD" >/dev/null
(cd "$work/src" && go build -buildvcs=auto -o "$work/medfed" ./cmd/medfed)
git -C "$repo" worktree remove --force "$work/src"
"$work/medfed" version

cp "$here/centre.yaml" "$work/"
cd "$work"
m() { "$work/medfed" "$@" --config centre.yaml; }

# The founding: one founder, so nobody else signs.
MEDFED_P2P_LISTEN=/ip4/127.0.0.1/tcp/4199 m federation init --out charter.txt
m federation install charter.txt

"$work/medfed" node --config centre.yaml >node.log 2>&1 &
node=$!
until grep -q 'API on https://' node.log; do
	if ! kill -0 "$node" 2>/dev/null; then
		cat node.log >&2
		exit 1
	fi
	sleep 0.2
done

# Three made-up patients' pseudonyms, and their records; the first
# patient's lab result is amended.
pseudonym() { printf 'medfed upgrade test patient %s' "$1" | sha256sum | cut -c1-64; }
P1=$(pseudonym 1) P2=$(pseudonym 2) P3=$(pseudonym 3)
: >records.txt
add() { # REPLACES PSEUDONYM CLASS LOCATION OCCURRED PAYLOAD
	local replaces=$1 p=$2 class=$3 location=$4 occurred=$5 payload=$6
	printf '%s' "$payload" >payload.txt
	out=$(m record add --pseudonym "$p" --class "$class" --location "$location" --occurred "$occurred" --file payload.txt --replaces "$replaces")
	index=$(echo "$out" | sed -n 's/^record \([0-9]*\) for .*/\1/p')
	[ -n "$index" ] || { echo "record add said: $out" >&2; exit 1; }
	echo "$index $replaces $p $payload" >>records.txt
}
add 0 "$P1" lab-result chemistry 2025-05-01 'synthetic HbA1c 48 mmol/mol'
add "$index" "$P1" lab-result chemistry 2025-05-01 'synthetic HbA1c 46 mmol/mol, recalibrated'
add 0 "$P2" discharge-summary inpatients 2025-06-12 'synthetic discharge summary: admitted with chest pain, discharged well'
add 0 "$P3" imaging radiology 2025-07-03 'synthetic chest X-ray report: no acute findings'

m staff add --role clinician --label 'Dr A. Example, cardiology' >/dev/null 2>&1
m staff add --role registrar --label 'B. Example, front desk' >/dev/null 2>&1
cat >jwks.json <<'JWKS'
{"keys":[{"alg":"ES384","crv":"P-384","kid":"ehr-1","kty":"EC","use":"sig","x":"XiXdC2WYgr9QqVeIA8w8hFNQ0_QB97-E_g1NIug0v0IocKSmcGYGVuxZCIhotTXv","y":"75KmC8hwmt5PVcuStGEYwwpz914rIiH5mIr2aMmCG0_Un953LTzXYyy-wEOJaoC0"}]}
JWKS
m client add --jwks jwks.json --scope 'system/DocumentReference.rs' --role clinician --label 'the EHR' >/dev/null 2>&1

# The first patient's key, attested, and their consent contract: opt-in,
# no research.
key=$("$work/medfed" patient keygen --out patient.key)
m patient attest --pseudonym "$P1" --public-key "$key" >/dev/null
cat >terms.json <<'TERMS'
{"base": "opt-in", "provision": [{"type": "deny", "purpose": ["research"]}]}
TERMS
m consent grant --key patient.key --pseudonym "$P1" --terms terms.json >/dev/null

# Every entry in a final checkpoint, then a graceful stop.
until m ledger status | awk '/^ledger/ {n=$3} /final checkpoint/ {f=$4; sub(",", "", f)} END {exit !(n != "" && f == n)}'; do
	sleep 0.2
done
kill -TERM "$node"
wait "$node"
node=
grep -q 'msg="node stopped"' node.log

data=st-elsewhere
if ls "$data" | grep -E -- '-(wal|shm|journal)$'; then
	echo "the stopped node left journals behind" >&2
	exit 1
fi
# The check opens the files read-only, which leaves empty journals: it
# reads a copy.
cp -a "$data" check-copy
MEDFED_DATA_DIR=$work/check-copy m check >old-check.txt

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=2025-01-01T00:00:00Z -cf - "$data" | gzip -9n >"$here/st-elsewhere.tar.gz"
cp records.txt old-check.txt "$here/"
ls -l "$here"
