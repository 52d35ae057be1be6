#!/usr/bin/env bash
# `make bench`: measure mini-container next to runc, crun, podman, bwrap and unshare, then
# regenerate the table and plots in docs/benchmarks.md. Needs root.
#   MCBENCH_ROUNDS / MCBENCH_BLOCK / MCBENCH_WARMUP   start/exec latency sampling (10 / 3 / 3)
#   MCBENCH_COUNTS=0,100,500   MCBENCH_THROUGHPUT_N=100   MCBENCH_IDLE_SECONDS=10
#   MCBENCH_SKIP=start,daemon-share,exec,population,docker-api    MCBENCH_NO_DOCS=1 (keep docs/ as is)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "bench: must run as root (namespaces, cgroups, runc, podman)" >&2
  exit 2
fi
PY=.venv/bin/python
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
  .venv/bin/pip install -q -e '.[bench]' --config-settings editable_mode=compat
fi
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# The harness cleans up after itself; this catches a harness that was killed outright.
trap '"$PY" bench/harness.py cleanup || echo "bench: cleanup failed, rerun: $PY bench/harness.py cleanup" >&2' EXIT
trap 'exit 130' INT TERM
rc=0
"$PY" bench/harness.py run --out "$out" "$@" || rc=$?
# mcrt against runc and crun under podman and ctr (its own interleaved run; docs/mcrt.md).
case ",${MCBENCH_SKIP:-}," in
  *,mcrt,*) ;;
  *) "$PY" bench/mcrt_bench.py --out "$out" ${MCBENCH_NO_DOCS:+} $([ -z "${MCBENCH_NO_DOCS:-}" ] && echo --docs docs) || rc=$? ;;
esac
# docker run --rm through mcd's Docker API beside a private dockerd (docs/api.md, "Speed").
if [[ ",${MCBENCH_SKIP:-}," != *",docker-api,"* ]]; then
  "$PY" bench/docker_api_bench.py --out "$out/docker-api.json" || rc=$?
fi
ln -sfn "$(basename "$out")" bench/results/latest
if [ -f "$out/results.json" ] && [ -z "${MCBENCH_NO_DOCS:-}" ]; then
  "$PY" bench/report.py "$out/results.json" --docs docs
fi
echo "bench: results in $out (exit $rc)"
exit "$rc"
