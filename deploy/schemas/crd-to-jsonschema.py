#!/usr/bin/env python3
"""Turns one version of a Kubernetes CustomResourceDefinition into a JSON Schema that
check-jsonschema can validate manifests against, offline.

    crd-to-jsonschema.py CRD.yaml VERSION > schema.json

What the API server would do with a manifest, as far as a JSON Schema can say it:
- `apiVersion` must be `<group>/<version>` and `kind` the CRD's kind;
- an object with `properties` and no `additionalProperties` or
  `x-kubernetes-preserve-unknown-fields` refuses other keys (the server would prune them
  silently, which hides a misspelt field: this is the `--strict` of kubernetes-validate);
- `x-kubernetes-int-or-string` becomes integer-or-string, `nullable` adds null.
`x-kubernetes-validations` (CEL rules) cannot be expressed and are left out; the schema's
`description` lists them so a reader knows what is not checked. Needs PyYAML.
"""

import json
import sys

import yaml


def convert(node, cel_rules, path="spec"):
    if isinstance(node, list):
        return [convert(item, cel_rules, path) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "x-kubernetes-validations":
            cel_rules.extend(f"{path}: {rule.get('message', rule['rule'])}" for rule in value)
            continue
        if key in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys",
                   "x-kubernetes-map-type", "x-kubernetes-embedded-resource"):
            continue
        if key == "properties":
            out[key] = {name: convert(sub, cel_rules, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            out[key] = convert(value, cel_rules, path + "[]" if key == "items" else path)
        else:
            out[key] = value
    if out.pop("x-kubernetes-int-or-string", False) and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    crd_path, version = sys.argv[1], sys.argv[2]
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    spec = crd["spec"]
    (served,) = [v for v in spec["versions"] if v["name"] == version]
    cel_rules = []
    schema = convert(served["schema"]["openAPIV3Schema"], cel_rules, path="")
    schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version}"}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    # `metadata` is the usual ObjectMeta, which the CRD leaves open.
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "spec"})
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = f"{spec['names']['kind']} ({spec['group']}/{version}), from {crd['metadata']['name']}"
    if cel_rules:
        schema["description"] = (schema.get("description", "").rstrip(".") + "."
                                 " Not checked here (CEL rules of the CRD): " + "; ".join(cel_rules))
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
