"""The Kubernetes definitions values.schema.json embeds, from
kubernetes-validate's bundled OpenAPI schemas of the chart's oldest
supported version (strict: unknown fields refused).

`python tests/chart/k8s_definitions.py` (in .venv) writes them into
values.schema.json; test_values_schema_k8s.py fails when the copy there
differs from what this would write.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import kubernetes_validate

CHART = Path(__file__).resolve().parents[2] / "charts" / "grpc-services"
KUBE_VERSION = "1.27.0"  # the chart's floor (Chart.yaml kubeVersion)
ROOTS = {"podSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
         "securityContext": "io.k8s.api.core.v1.SecurityContext"}
REF = re.compile(r"^.*#/\$defs/(.+)$")


def _schemas_dir() -> Path:
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBE_VERSION}-local-strict"


def definitions() -> dict:
    """{"k8s.<Name>": schema} for both security contexts and what they use,
    with $refs pointing into values.schema.json's own definitions and
    descriptions shortened to their first sentence."""
    defs = json.loads((_schemas_dir() / "_definitions.json").read_text())["$defs"]
    out: dict = {}

    def convert(node):
        if isinstance(node, dict):
            node = dict(node)
            if "$ref" in node:
                name = REF.match(node["$ref"]).group(1)
                add(name)
                node["$ref"] = f"#/definitions/k8s.{name.rsplit('.', 1)[1]}"
            if isinstance(node.get("description"), str):
                node["description"] = node["description"].split(". ")[0].rstrip(".")
            return {k: convert(v) for k, v in node.items()}
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node

    def add(name):
        short = f"k8s.{name.rsplit('.', 1)[1]}"
        if short not in out:
            out[short] = None
            out[short] = convert(defs[name])

    for name in ROOTS.values():
        add(name)
    return dict(sorted(out.items()))


def main() -> None:
    path = CHART / "values.schema.json"
    schema = json.loads(path.read_text())
    schema["definitions"] = {k: v for k, v in schema["definitions"].items() if not k.startswith("k8s.")}
    schema["definitions"].update(definitions())
    path.write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
