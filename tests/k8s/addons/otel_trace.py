"""Finds one request's trace in the OpenTelemetry Collector's debug exporter
output (verbosity: detailed) and checks it: spans from a service2 pod and a
service1 pod, in one trace, each carrying the request id, and resources that
name the real pod (k8s.pod.name, k8s.namespace.name, service.instance.id =
the pod's UID, as the chart sets them).

    otel_trace.py REQUEST_ID NAMESPACE PODS_JSON < collector.log

PODS_JSON is `kubectl get pods -o json` of the release's namespace. Prints
what it found; exits 1 when the trace is not (yet) complete or wrong, 0 when
it passes.
"""

import json
import re
import sys

ATTRIBUTE = re.compile(r"^\s+-> ([^:]+): \w+\((.*)\)$")
FIELD = re.compile(r"^\s+(Trace ID|Parent ID|ID|Name|Kind)\s+: ?(.*)$")
DUMP_HEADERS = ("Resource", "ScopeSpans", "InstrumentationScope", "Events:", "SpanEvent", "Links:", "SpanLink")


def spans(lines):
    """Yields (resource attributes, span fields, span attributes) for every
    span in the debug exporter's text. The dump's own lines start with one
    of DUMP_HEADERS or with white space; any other line (the collector's own
    log) ends it."""
    resource, span, section = {}, None, None
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("Resource attributes:"):
            resource, section = {}, "resource"
        elif re.match(r"^Span #\d+$", line):
            if span is not None:
                yield span
            span, section = (resource, {}, {}), None
        elif line.startswith("Attributes:"):
            section = "span" if span is not None else None
        elif line and not line[0].isspace():
            section = None
            if not line.startswith(DUMP_HEADERS) and span is not None:
                yield span
                span = None
        elif section is None and span is not None and (field := FIELD.match(line)):
            span[1][field.group(1)] = field.group(2).strip()
        elif attribute := ATTRIBUTE.match(line):
            if section == "resource":
                resource[attribute.group(1)] = attribute.group(2)
            elif section == "span":
                span[2][attribute.group(1)] = attribute.group(2)
    if span is not None:
        yield span


def main():
    request_id, namespace, pods_json = sys.argv[1:4]
    pods = {}
    for pod in json.load(open(pods_json))["items"]:
        labels = pod["metadata"].get("labels", {})
        pods[pod["metadata"]["name"]] = (labels.get("app.kubernetes.io/component"), pod["metadata"]["uid"])
    found = [s for s in spans(sys.stdin) if s[2].get("request_id") == request_id]
    if not found:
        print(f"no span with request_id {request_id} yet")
        return 1
    traces = {s[1].get("Trace ID") for s in found}
    problems = []
    if len(traces) != 1:
        problems.append(f"spans of request {request_id} are in {len(traces)} traces: {sorted(traces)}")
    seen = {}
    for resource, fields, _ in found:
        service = resource.get("service.name")
        pod = resource.get("k8s.pod.name")
        print(
            f"  trace {fields.get('Trace ID')} {service} pod {pod} ({resource.get('k8s.namespace.name')}, "
            f"instance {resource.get('service.instance.id')}): {fields.get('Kind')} {fields.get('Name')}"
        )
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
