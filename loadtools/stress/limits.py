"""The services' defaults the stress check relies on (README "Limits"; it
does not change them), the slack it allows on each, and its topology."""

HEADER_READ_TIMEOUT_S = 10.0  # HTTP_HEADER_READ_TIMEOUT
MAX_HEADER_BYTES = 16384  # HTTP_MAX_HEADER_BYTES
IDLE_TIMEOUT_S = 60.0  # HTTP_IDLE_TIMEOUT
# The server looks for idle connections every quarter of the timeout, and
# the client's last PING may be up to 5 s old: a connection idle for the
# timeout is closed at most this much later.
IDLE_SLACK_S = IDLE_TIMEOUT_S / 4 + 5.0
HEALTH_MAX_WATCHES = 100  # HEALTH_MAX_WATCHES
SHUTDOWN_GRACE_S = 20.0  # SHUTDOWN_GRACE
# An open Watch must not hold a shutdown: exit well within the grace period.
SHUTDOWN_LIMIT_S = 10.0

# The flood's requests that may end in a connection error or timeout rather
# than an answer (1 in 10,000). The server closes no busy connection, and the
# listen backlog holds a 2,000-connection burst; what is left is the machine.
FLOOD_ERROR_PCT = 0.01

# Slack on top of the header-read timeout for "cut off in time": the
# server's timer starts when it has accepted the connection and read its
# first byte, which under the storm can lag the client's connect.
CUTOFF_SLACK_S = 5.0

# The hostile phase (hostile.py, issue 26).
WRITE_TIMEOUT_S = 10.0  # HTTP_WRITE_TIMEOUT
TLS_HANDSHAKE_TIMEOUT_S = 10.0  # TLS_HANDSHAKE_TIMEOUT (and again for the preface)
MAX_CONNECTIONS = 2500  # MAX_CONNECTIONS, each REST port
MAX_TLS_HANDSHAKES = 128  # MAX_TLS_HANDSHAKES, service1's gRPC port
# On top of a timeout, for "closed in time": the server's timers start when
# it has accepted the connection (or seen its writes stall), which under
# full load can lag the client's view by seconds.
HOSTILE_SLACK_S = 5.0
# Connections the client sees open at once beyond a cap: a close the server
# has made and the client not yet seen, while the next one is accepted.
CAP_SLACK = 16
# The chart's memory limit for a pod: what a flooded process must stay under.
CHART_MEMORY_MIB = 64.0

REPLICAS = 2  # service1 processes (127.0.0.2, .3) behind service2

# The gray-failure phase (gray.py): three replicas, so that one can be frozen
# or slow while two serve (SERVICE1_EJECT_MAX_PERCENT, 50 %, allows one
# ejected), and the slow one's relay on an address of its own.
GRAY_REPLICAS = 3  # service1 processes (127.0.0.2-.4)
RELAY_ADDR = "127.0.0.5"
GRAY_WARMUP_S = 10.0  # oha before the freeze, and the healthy control before the slow window
# With the defaults (SERVICE1_ATTEMPT_TIMEOUT 1 s, a retry backoff of at
# most 200 ms) no request may take longer than this while a replica is frozen
# (issue 30: "with the defaults none takes over 2 s").
GRAY_LONGEST_S = 2.0
