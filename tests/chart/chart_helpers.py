"""Shared helpers: render the chart offline with Helm's own engine.

helm_python embeds Helm v4's Go SDK, so these renders run the real template
engine, the real values.schema.json check and the real Sprig functions.
`lookup` returns nothing offline; tests that need "objects already in the
cluster" pass them through tls.testExistingSecrets (see values.yaml).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml

class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key written twice in one mapping.

    PyYAML (like the API server's decoder in some versions) keeps the last
    of two equal keys without a word; a template that writes a label twice
    would then pass unnoticed.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} written twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_all(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=UniqueKeyLoader) if doc]


REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "grpc-services"
RELEASE = "hello"
NAMESPACE = "demo"


@dataclass
class Rendered:
    """One offline render: the manifests as objects, and NOTES.txt."""

    objects: list[dict[str, Any]]
    notes: str
    fullname: str
    sources: dict[str, str] = field(repr=False)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for o in self.all(kind):
            if o["metadata"]["name"] == name:
                return o
        return None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        names = [o["metadata"]["name"] for o in self.all(kind)]
        assert found is not None, f"no {kind} {name!r}; have {names}"
        return found

    def deployment(self, component: str) -> dict[str, Any]:
        return self.get("Deployment", f"{self.fullname}-{component}")

    def container(self, component: str) -> dict[str, Any]:
        return self.deployment(component)["spec"]["template"]["spec"]["containers"][0]

    def config(self, component: str) -> dict[str, str]:
        """The environment a service gets from its ConfigMap plus extraEnv."""
        container = self.container(component)
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            cm = self.get("ConfigMap", source["configMapRef"]["name"])
            env.update(cm["data"])
        for var in container.get("env", []):
            env[var["name"]] = var.get("value")
        return env

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """Every pod spec the chart makes, hooks included: (label, spec)."""
        specs = []
        for o in self.objects:
            if o["kind"] == "Pod":
                specs.append((f"Pod/{o['metadata']['name']}", o["spec"]))
            elif o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                specs.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
        return specs

    def secret_data(self, name: str) -> dict[str, str]:
        return self.get("Secret", name)["data"]


def render(
    values: dict[str, Any] | None = None,
    *,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    is_upgrade: bool = False,
) -> Rendered:
    with helm_python.Chart.load(CHART) as chart:
        sources = chart.render(
            values=values or {},
            name=name,
            namespace=namespace,
            is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(sources.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(load_all(text))
    fullname = (values or {}).get("fullnameOverride") or name
    return Rendered(objects=objects, notes=notes, fullname=fullname, sources=sources)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(data: str) -> bytes:
    return base64.b64decode(data)


def seconds(duration: str) -> int:
    """"5s" -> 5, "5m" -> 300: the duration forms the chart writes."""
    units = {"s": 1, "m": 60, "h": 3600}
    assert duration[-1] in units and duration[:-1].isdigit(), duration
    return int(duration[:-1]) * units[duration[-1]]


def pod_labels(rendered: Rendered, component: str) -> dict[str, str]:
    return rendered.deployment(component)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels only, as the chart uses) matches."""
    assert set(selector) <= {"matchLabels"}, f"unexpected selector form {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
