"""Generates the ModelDeployment CRD from the pydantic models in `api.py`.

`python -m modelops_operator.crd` prints it; `crds/` holds the committed copy and a test checks
that the two are identical. The translation turns pydantic's JSON Schema into the structural
OpenAPI v3 subset the apiserver accepts: references inlined, `Optional` unwrapped, int-or-string
marked, free-form maps preserved, titles dropped.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from modelops_operator import api, constants

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Version", "type": "string", "jsonPath": ".status.model.version"},
    {"name": "Score", "type": "string", "jsonPath": ".status.model.score"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]

_DROPPED_KEYS = {
    "title",
    "additionalProperties",
    "anyOf",
    "$ref",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "default",
}


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Translate one JSON Schema node (pydantic's dialect) into a structural schema node."""
    if not node:
        # Any value (a search's choices): the apiserver keeps it, the model's own rules judge it.
        return {"x-kubernetes-preserve-unknown-fields": True}
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return structural({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    if "anyOf" in node:
        return _union(node, defs)
    out: dict[str, Any] = {k: v for k, v in node.items() if k not in _DROPPED_KEYS}
    if node.get("default") is not None:
        out["default"] = node["default"]
    for bound in ("Minimum", "Maximum"):
        if f"exclusive{bound}" in node:
            out[bound.lower()] = node[f"exclusive{bound}"]
            out[f"exclusive{bound}"] = True
    if "properties" in node:
        out["properties"] = {
            name: structural(child, defs) for name, child in node["properties"].items()
        }
    if "items" in node:
        out["items"] = structural(node["items"], defs)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        out["additionalProperties"] = structural(extra, defs)
    elif node.get("type") == "object" and "properties" not in node:
        # A free-form map (hyperparameters): keep whatever the user wrote.
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _union(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    options = [option for option in node["anyOf"] if option.get("type") != "null"]
    if len(options) == 1:
        return structural({**options[0], **siblings}, defs)
    types = sorted(option.get("type", "") for option in options)
    if types == ["integer", "string"]:
        out = structural(siblings, defs)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out["x-kubernetes-int-or-string"] = True
        patterns = [option["pattern"] for option in options if "pattern" in option]
        if patterns:
            out["pattern"] = patterns[0]
        return out
    raise ValueError(f"no structural form for the union {node['anyOf']}")


def _schema(model: type[api.ApiModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return structural(schema, schema.pop("$defs", {}))


def build_crd() -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": "A scikit-learn model, trained by a Job (spec.training) or provided "
        "as a file (spec.model), served over REST and gRPC (the Open Inference Protocol) with "
        "its metrics, page and dashboard.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _schema(api.ModelDeploymentSpec),
            "status": _schema(api.ModelDeploymentStatus),
        },
        "x-kubernetes-validations": [{"rule": api.NAME_RULE.cel, "message": api.NAME_RULE.message}],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": constants.CRD_NAME},
        "spec": {
            "group": constants.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": constants.KIND,
                "plural": constants.PLURAL,
                "singular": constants.SINGULAR,
                "shortNames": constants.SHORT_NAMES,
                "categories": ["all", "modelops"],
            },
            "versions": [
                {
                    "name": constants.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `python -m modelops_operator.crd` from operator/src/modelops_operator/api.py.\n# Do not edit: change the pydantic models and regenerate.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
