#!/usr/bin/env bash
# One measured release: runs the tool's command(s) and records, in OUT, the wall clock
# around them and, per client process, its wall time, CPU (user, sys) and peak RSS.
#
#   release.sh OUT LOG atom    KUBECONFIG WORKDIR ATOM_BIN
#   release.sh OUT LOG kubectl KUBECONFIG WORKDIR KUBECTL_BIN TIMEOUT ROLLOUT(0|1) NS...
#
# OUT lines:  start EPOCH | proc WALL USER SYS MAXRSS_KB EXIT ARGV0-VERB | end EPOCH | exit CODE
# end is when the last client process returned, not when this script's own bookkeeping
# after it finished.
# CPU comes from bash's `time` (wait4 rusage, millisecond precision: GNU time prints only
# centiseconds); peak RSS from GNU time's %M. Both include the few hundred microseconds of
# GNU time itself, the same for every client process.
set -uo pipefail
out=$1 log=$2 tool=$3 kubeconfig=$4 work=$5 bin=$6
shift 6
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rc=0

run() {
  local label=$1
  shift
  local TIMEFORMAT='%3R %3U %3S'
  { time /usr/bin/time -f '%M %x' -o "$scratch/rss" "$@" </dev/null >>"$log" 2>&1; } 2>"$scratch/cpu"
  local code=$?
  # Taken before the bookkeeping below, which forks tail and cat (about 3 ms).
  last_exit=$EPOCHREALTIME
  local rss exit_code
  read -r rss exit_code < <(tail -n1 "$scratch/rss")
  echo "proc $(cat "$scratch/cpu") ${rss:-0} ${exit_code:-$code} $label" >>"$out"
  return "$code"
}

echo "start $EPOCHREALTIME" >>"$out"
case $tool in
  atom)
    export KUBECONFIG=$kubeconfig
    run atom-run "$bin" run --kubeconfig "$kubeconfig" "$work/release.lua" || rc=$?
    ;;
  kubectl)
    timeout=$1 rollout=$2
    shift 2
    export KUBECONFIG=$kubeconfig
    run kubectl-apply "$bin" apply --server-side -f "$work/objects" || rc=$?
    if ((rc == 0)); then
      for ns in "$@"; do
        run kubectl-wait "$bin" wait --for=condition=Available deployment --all -n "$ns" \
          --timeout="${timeout}s" || { rc=$?; break; }
        if ((rollout)); then
          # rollout status takes one deployment at a time, as scripts that use it do; the
          # names come from the generator (WORKDIR/deployments: "NS NAME" lines).
          while read -r dns d; do
            [[ $dns == "$ns" ]] || continue
            run kubectl-rollout "$bin" rollout status -n "$ns" "deployment/$d" \
              --timeout="${timeout}s" || { rc=$?; break 2; }
          done <"$work/deployments"
        fi
      done
    fi
    ;;
  *)
    echo "unknown tool $tool" >&2
    rc=2
    ;;
esac
echo "end ${last_exit:-$EPOCHREALTIME}" >>"$out"
echo "exit $rc" >>"$out"
exit "$rc"
