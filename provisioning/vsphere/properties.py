"""Reading managed objects through the PropertyCollector with explicit property paths.

Reading properties one by one through pyvmomi's lazy attributes costs a round trip each and
can ask for properties that were never set, which some servers (govmomi's simulator among
them) do not survive; a PropertyCollector request returns only what is set.
"""

from __future__ import annotations

import time
from typing import Any

from pyVmomi import vim, vmodl

PC = vmodl.query.PropertyCollector


def _collect(
    service: vim.ServiceInstance, object_specs: list[Any], kind: type, paths: list[str]
) -> list[tuple[Any, dict[str, Any]]]:
    collector = service.content.propertyCollector
    filter_spec = PC.FilterSpec(
        objectSet=object_specs, propSet=[PC.PropertySpec(type=kind, pathSet=paths)]
    )
    found: list[tuple[Any, dict[str, Any]]] = []
    result = collector.RetrievePropertiesEx([filter_spec], PC.RetrieveOptions())
    while result is not None:
        for content in result.objects:
            found.append((content.obj, {p.name: p.val for p in content.propSet or []}))
        if not result.token:
            break
        result = collector.ContinueRetrievePropertiesEx(result.token)
    return found


def objects_of_type(
    service: vim.ServiceInstance, container: Any, kind: type, paths: list[str]
) -> list[tuple[Any, dict[str, Any]]]:
    """(object, {path: value}) for every `kind` under `container`, recursively."""
    view = service.content.viewManager.CreateContainerView(container, [kind], True)
    try:
        traversal = PC.TraversalSpec(
            name="view", path="view", skip=False, type=vim.view.ContainerView
        )
        spec = PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])
        return _collect(service, [spec], kind, paths)
    finally:
        view.Destroy()


def properties(service: vim.ServiceInstance, obj: Any, paths: list[str]) -> dict[str, Any]:
    found = _collect(service, [PC.ObjectSpec(obj=obj, skip=False)], type(obj), paths)
    return found[0][1] if found else {}


def wait_for_task(service: vim.ServiceInstance, task: vim.Task, what: str) -> Any:
    """The task's result; its fault message raised as RuntimeError(what: message)."""
    while True:
        info = properties(service, task, ["info.state", "info.error", "info.result"])
        state = info.get("info.state")
        if state == vim.TaskInfo.State.success:
            return info.get("info.result")
        if state == vim.TaskInfo.State.error:
            error = info.get("info.error")
            message = getattr(error, "localizedMessage", "") or getattr(error, "msg", "")
            raise TaskFailed(f"{what}: {message or type(error).__name__}")
        time.sleep(0.2)


class TaskFailed(RuntimeError):
    pass
