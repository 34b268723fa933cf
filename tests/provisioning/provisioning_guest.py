"""Plays the part of VMware Tools inside the deployed appliances: once a VM runs, it reports
the address its guestinfo gave it, the way the simulator accepts (extraConfig SET.guest.*)."""

from __future__ import annotations

import gevent
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from passerelle.provisioning.vsphere.properties import objects_of_type, wait_for_task


class GuestAgent:
    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.service = SmartConnect(
            host=host, port=port, user=user, pwd=password, disableSslCertValidation=True
        )
        self.reported: dict[str, str] = {}
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            for vm, props in objects_of_type(
                self.service,
                self.service.content.rootFolder,
                vim.VirtualMachine,
                ["name", "runtime.powerState", "config.extraConfig"],
            ):
                extra = {o.key: o.value for o in props.get("config.extraConfig") or []}
                ip = extra.get("guestinfo.passerelle.ip", "").split("/")[0]
                running = props.get("runtime.powerState") == "poweredOn"
                if running and ip and self.reported.get(props["name"]) != ip:
                    spec = vim.vm.ConfigSpec(
                        extraConfig=[vim.option.OptionValue(key="SET.guest.ipAddress", value=ip)]
                    )
                    wait_for_task(self.service, vm.ReconfigVM_Task(spec=spec), "report ip")
                    self.reported[props["name"]] = ip
            gevent.sleep(0.05)

    def stop(self) -> None:
        self._greenlet.kill()
        Disconnect(self.service)
