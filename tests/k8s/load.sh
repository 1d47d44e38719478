#!/usr/bin/env bash
# Load for the live cluster checks; runs where the cluster's addresses are
# reachable (inside the test cluster's network namespace, or on a kind node),
# so it needs only bash and curl.
#
#   load.sh calls URL PREFIX COUNT   COUNT sequential GETs of URL with request
#                                    ids PREFIX-1..COUNT; prints "sent N failed M"
#                                    and, for each failure, "ID:STATUS@Ss"
#   load.sh until URL STOP_FILE      GETs back to back (two at a time) until
#                                    STOP_FILE exists (then removes it), at
#                                    most 10 minutes; a STOP_FILE there
#                                    before the first call is an error;
#                                    prints "sent N failed M longest S" and,
#                                    for each failure, the status and time
#   load.sh reachable URL [STATUS]   GETs URL every half second until one
#                                    answers STATUS (200 unless given), at
#                                    most 30 s; prints "first STATUS after N
#                                    tries" (exit 1 if none)
#   load.sh echoes URL PREFIX COUNT BODY
#                                    as calls, but a call counts only if it
#                                    answers 200 with BODY and echoes its
#                                    X-Request-ID; prints "sent N failed M
#                                    echoed ID" (the last id that came back)
#                                    and, for each failure, "ID:STATUS:ECHOED"
#
# Env: LOAD_HOST sends every call with that Host header (a route on an
# ingress or a Gateway, which picks it by host name).
set -uo pipefail

mode=${1:?mode} url=${2:?url}
host_header=()
[[ -n ${LOAD_HOST:-} ]] && host_header=(-H "Host: $LOAD_HOST")

# one ID: "STATUS MICROSECONDS" of one GET.
one() {
  local out code seconds
  out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 "${host_header[@]}" \
    -H "X-Request-ID: $1" "$url") || true
  code=${out%% *} seconds=${out##* }
  [[ $code =~ ^[0-9]{3}$ && $seconds =~ ^[0-9]+\.[0-9]{6}$ ]] || {
    echo "000 10000000"
    return
  }
  echo "$code $((10#${seconds/./}))"
}

case $mode in
  calls)
    prefix=${3:?prefix} count=${4:?count} failed=0 failures=() start=$SECONDS
    for ((i = 1; i <= count; i++)); do
      read -r code _ < <(one "$prefix-$i")
      [[ $code == 200 ]] || {
        failed=$((failed + 1))
        failures+=("$prefix-$i:$code@$((SECONDS - start))s")
      }
    done
    # The failures (request id, status, seconds in) follow only when there
    # are some, so callers can compare the first words.
    echo "sent $count failed $failed${failures:+ ${failures[*]:0:10}}"
    ;;
  until)
    stop=${3:?stop file} sent=0 failed=0 longest=0 deadline=$((SECONDS + 600)) failures=()
    # A stop file there before the first call is another load's: say so
    # rather than stop at once with nothing sent.
    [[ -e $stop ]] && {
      echo "sent 0 failed 0 longest 0.000s (the stop file $stop was there before the first call)"
      exit 1
    }
    while [[ ! -e $stop ]] && ((SECONDS < deadline)); do
      # Two calls at once, so the load is steady rather than one at a time.
      results=$({
        one "load-$sent-a" &
        one "load-$sent-b"
        wait
      })
      while read -r code micros; do
        sent=$((sent + 1))
        ((micros > longest)) && longest=$micros
        if [[ $code != 200 ]]; then
          failed=$((failed + 1))
          failures+=("$code@${SECONDS}s")
        fi
      done <<<"$results"
    done
    rm -f "$stop"
    printf 'sent %d failed %d longest %d.%03ds %s\n' "$sent" "$failed" $((longest / 1000000)) \
      $((longest / 1000 % 1000)) "${failures[*]:0:10}"
    ;;
  reachable)
    # A Service is Ready for helm --wait once its pods are, but the node's
    # kube-proxy programs its endpoints a moment later; until then a call is
    # refused at once (000 at 0 s), which is Kubernetes', not the chart's, doing.
    # A route removed is the same the other way round: a router stops
    # answering a moment after its object is gone (404 wanted then).
    # Bounded by time too: a call that hangs takes up to 10 s (--max-time).
    wanted=${3:-200}
    for ((i = 1; i <= 60 && SECONDS < 30; i++)); do
      read -r code _ < <(one "reachable-$i")
      [[ $code == "$wanted" ]] && {
        echo "first $wanted after $i tries"
        exit 0
      }
      sleep 0.5
    done
    echo "no $wanted in $((i - 1)) tries ($SECONDS s), last status $code"
    exit 1
    ;;
  echoes)
    prefix=${3:?prefix} count=${4:?count} want=${5?body} failed=0 failures=() echoed=""
    for ((i = 1; i <= count; i++)); do
      # The body, then a last line "STATUS ECHOED-ID" (curl's %header{}).
      out=$(curl -s --max-time 10 -w '\n%{http_code} %header{x-request-id}' "${host_header[@]}" \
        -H "X-Request-ID: $prefix-$i" "$url") || true
      last=${out##*$'\n'} body=${out%$'\n'*}
      code=${last%% *} id=${last#* }
      if [[ $code == 200 && $body == "$want" && $id == "$prefix-$i" ]]; then
        echoed=$id
      else
        failed=$((failed + 1))
        failures+=("$prefix-$i:$code:${id:-none}")
      fi
    done
    echo "sent $count failed $failed echoed ${echoed:-none}${failures:+ ${failures[*]:0:10}}"
    ;;
  *)
    echo "usage: load.sh calls URL PREFIX COUNT | until URL STOP_FILE | reachable URL | echoes URL PREFIX COUNT BODY" >&2
    exit 2
    ;;
esac
