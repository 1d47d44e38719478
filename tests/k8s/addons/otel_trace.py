"""Finds one request's trace in the OpenTelemetry Collector's debug exporter
output (verbosity: detailed) and checks it: spans from a service2 pod and a
service1 pod, in one trace, each carrying the request id, and resources that
name the real pod (k8s.pod.name, k8s.namespace.name, service.instance.id =
the pod's UID, as the chart sets them).

    otel_trace.py REQUEST_ID NAMESPACE PODS_JSON EXPORTER < collector.log

PODS_JSON is `kubectl get pods -o json` of the release's namespace.
EXPORTER is the debug exporter every span must have come through: the
collector has one pipeline per receiver (protocol and TLS), each with its
own debug exporter, so this says which way the spans were sent. Prints
what it found; exits 1 when the trace is not (yet) complete or wrong, 0 when
it passes.
"""

import json
import re
import sys

ATTRIBUTE = re.compile(r"^\s+-> ([^:]+): \w+\((.*)\)$")
FIELD = re.compile(r"^\s+(Trace ID|Parent ID|ID|Name|Kind)\s+: ?(.*)$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT")
SPAN = re.compile(r"^Span #\d+$")
EXPORTER = re.compile(r'"otelcol.component.id": "([^"]+)"')


def records(lines):
    """The collector's log records: each starts with a timestamp; a debug
    exporter's record runs over many lines (the dump) and ends with its
    fields, which name the exporter."""
    record = []
    for line in lines:
        if TIMESTAMP.match(line) and record:
            yield record
            record = []
        record.append(line.rstrip("\n"))
    if record:
        yield record


def spans(lines):
    """Yields (exporter, resource attributes, span fields, span attributes)
    for every span the debug exporters printed."""
    for record in records(lines):
        if "ResourceSpans #" not in record[0]:
            continue
        exporter = EXPORTER.search(record[-1])
        exporter = exporter.group(1) if exporter else None
        resource, span, section = {}, None, None
        for line in record[1:]:
            if line.startswith("Resource attributes:"):
                resource, section = {}, "resource"
            elif SPAN.match(line):
                if span is not None:
                    yield span
                span, section = (exporter, resource, {}, {}), None
            elif line.startswith("Attributes:"):
                section = "span" if span is not None else None
            elif line.startswith(("Events:", "Links:", "ScopeSpans", "InstrumentationScope")):
                section = None
            elif section is None and span is not None and (field := FIELD.match(line)):
                span[2][field.group(1)] = field.group(2).strip()
            elif attribute := ATTRIBUTE.match(line):
                if section == "resource":
                    resource[attribute.group(1)] = attribute.group(2)
                elif section == "span":
                    span[3][attribute.group(1)] = attribute.group(2)
        if span is not None:
            yield span


def main():
    request_id, namespace, pods_json, exporter = sys.argv[1:5]
    pods = {}
    for pod in json.load(open(pods_json))["items"]:
        labels = pod["metadata"].get("labels", {})
        pods[pod["metadata"]["name"]] = (labels.get("app.kubernetes.io/component"), pod["metadata"]["uid"])
    found = [s for s in spans(sys.stdin) if s[3].get("request_id") == request_id]
    if not found:
        print(f"no span with request_id {request_id} yet")
        return 1
    traces = {s[2].get("Trace ID") for s in found}
    problems = []
    if len(traces) != 1:
        problems.append(f"spans of request {request_id} are in {len(traces)} traces: {sorted(traces)}")
    seen = {}
    for received_by, resource, fields, _ in found:
        service = resource.get("service.name")
        pod = resource.get("k8s.pod.name")
        print(
            f"  trace {fields.get('Trace ID')} {service} pod {pod} ({resource.get('k8s.namespace.name')}, "
            f"instance {resource.get('service.instance.id')}): {fields.get('Kind')} {fields.get('Name')}, via {received_by}"
        )
        if received_by != exporter:
            problems.append(f"{service} span of pod {pod} came through {received_by}, not {exporter}")
        if pod not in pods:
            problems.append(f"{service} span names pod {pod!r}, which is not a pod of {namespace}")
            continue
        component, uid = pods[pod]
        if component != service:
            problems.append(f"{service} span names pod {pod}, a {component} pod")
        if resource.get("k8s.namespace.name") != namespace:
            problems.append(f"{service} span has k8s.namespace.name {resource.get('k8s.namespace.name')!r}")
        if resource.get("service.instance.id") != uid:
            problems.append(f"{service} span has service.instance.id {resource.get('service.instance.id')!r}, pod UID {uid}")
        seen.setdefault(service, set()).add(fields.get("Kind"))
    for service, kind in (("service2", "Server"), ("service2", "Client"), ("service1", "Server")):
        if kind not in seen.get(service, set()):
            problems.append(f"no {kind} span from {service} with request_id {request_id} yet")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
