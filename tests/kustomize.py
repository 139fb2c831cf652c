"""A small Kustomize renderer for the tests: the features deploy/k8s uses, and nothing else.

Supported: ``resources`` (files and directories), ``namespace``, ``images`` and ``patches`` given as
JSON 6902 operations (inline ``patch`` or a ``path``) with a ``target`` by kind and name. Anything else in
a kustomization raises, so a manifest change that needs more is noticed here rather than rendered
wrongly. When ``kubectl`` is installed, the tests check this renderer against ``kubectl kustomize``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
}


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def render(directory: Path) -> list[Manifest]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise NotImplementedError(f"{directory}: the test renderer does not support {sorted(unsupported)}")
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects.extend(render(path) if path.is_dir() else load_documents(path))
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, patch, directory)
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def key(obj: Manifest) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


def _apply_patch(objects: list[Manifest], patch: Manifest, directory: Path) -> None:
    if set(patch) - {"target", "patch", "path"} or "target" not in patch:
        raise NotImplementedError(f"patch form not supported: {sorted(patch)}")
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text(encoding="utf-8")
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise NotImplementedError("strategic-merge patches are not supported; use JSON 6902 operations")
    target = patch["target"]
    if set(target) - {"kind", "name"}:
        raise NotImplementedError(f"patch target not supported: {sorted(target)}")
    matched = [
        obj
        for obj in objects
        if obj["kind"] == target.get("kind", obj["kind"])
        and obj["metadata"]["name"] == target.get("name", obj["metadata"]["name"])
    ]
    if not matched:
        raise ValueError(f"patch target {target} matches nothing")
    for obj in matched:
        for operation in operations:
            _json_patch(obj, operation)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json_patch(doc: Manifest, operation: Manifest) -> None:
    op, parts = operation["op"], _pointer(operation["path"])
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(index, value)
        elif op == "replace":
            parent[index] = value
        elif op == "remove":
            del parent[index]
        else:
            raise NotImplementedError(f"JSON patch op {op!r}")
        return
    if op == "add":
        parent[last] = value
    elif op == "replace":
        if last not in parent:
            raise ValueError(f"replace of a missing member: {operation['path']}")
        parent[last] = value
    elif op == "remove":
        del parent[last]
    else:
        raise NotImplementedError(f"JSON patch op {op!r}")


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _set_image(objects: list[Manifest], rule: Manifest) -> None:
    if set(rule) - {"name", "newName", "newTag", "digest"}:
        raise NotImplementedError(f"image rule not supported: {sorted(rule)}")
    for container in containers(objects):
        current = container.get("image", "")
        if _image_name(current) != rule["name"]:
            continue
        name = rule.get("newName", rule["name"])
        if "digest" in rule:
            container["image"] = f"{name}@{rule['digest']}"
        elif "newTag" in rule:
            container["image"] = f"{name}:{rule['newTag']}"
        else:
            container["image"] = name + current[len(_image_name(current)) :]


def pod_spec(obj: Manifest) -> Manifest | None:
    template = obj.get("spec", {}).get("template")
    return template.get("spec") if isinstance(template, dict) else None


def containers(objects: list[Manifest]) -> list[Manifest]:
    found = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            found.extend(spec.get("initContainers", []))
            found.extend(spec.get("containers", []))
    return found
