# shellcheck shell=bash
# HTTP checks against a running service2, shared by scripts/test-image.sh
# (containers on a podman network, run by CI) and tests/kind/run.sh (a kind
# cluster behind `kubectl port-forward`): one checker, so the kind run checks
# exactly what CI checks. Source this file; it needs curl.
#
# Each check prints one line describing what it saw and returns 0 on success.

# check_say_hello BASE_URL REQUEST_ID NAME: GET /api/v1/say-hello?name=NAME
# answers 200 "Hello, NAME!" (upper-cased) and echoes X-Request-ID.
check_say_hello() {
  local base=$1 request_id=$2 name=$3 response head body
  local want="\"Hello, ${name^^}!\""
  response=$(curl -s -i --max-time 10 -H "X-Request-ID: $request_id" \
    "$base/api/v1/say-hello?name=$name") || {
    echo "GET $base/api/v1/say-hello?name=$name: no answer (curl exit $?)"
    return 1
  }
  head=${response%%$'\r\n\r\n'*}
  body=${response#*$'\r\n\r\n'}
  if [[ $head == "HTTP/1.1 200"* && $body == "$want" ]] &&
    grep -qixF "x-request-id: $request_id"$'\r' <<<"$head"; then
    echo "GET /api/v1/say-hello?name=$name -> 200 $body, X-Request-ID echoed"
    return 0
  fi
  echo "GET /api/v1/say-hello?name=$name -> ${head%%$'\r'*} $body (want 200 $want and x-request-id: $request_id)"
  return 1
}

# call_many BASE_URL ID_PREFIX COUNT: COUNT sequential say-hello calls with
# request ids ID_PREFIX-1..COUNT; returns 1 if any did not answer 200.
call_many() {
  local base=$1 prefix=$2 count=$3 i code bad=0
  for ((i = 1; i <= count; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "X-Request-ID: $prefix-$i" \
      "$base/api/v1/say-hello?name=n$i") || code=000
    [[ $code == 200 ]] || bad=$((bad + 1))
  done
  echo "$count calls, $bad not 200"
  ((bad == 0))
}

# count_served ID_PREFIX < LOG: how many "grpc call served" lines in a
# service1 log carry a request id starting with ID_PREFIX-.
count_served() {
  grep -F "\"request_id\":\"$1-" | grep -cF '"message":"grpc call served"' || true
}

# calls_during PID BASE_URL: say-hello calls back to back while process PID
# runs (at most 90 s), then 30 more; ok when none failed and at least one
# ran while PID did.
calls_during() {
  local pid=$1 base=$2 sent=0 errors=0 during code deadline=$((SECONDS + 90))
  _call() {
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/api/v1/say-hello?name=load") || code=000
    sent=$((sent + 1))
    [[ $code == 200 ]] || errors=$((errors + 1))
  }
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do _call; done
  during=$sent
  for _ in $(seq 30); do _call; done
  echo "$sent requests ($during during), $errors failed"
  ((errors == 0 && during > 0))
}
