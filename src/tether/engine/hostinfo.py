"""Docker's ``/info`` document for this host (``Engine.info``)."""

from __future__ import annotations

import os
import platform
from typing import Any

from tether import __version__
from tether.engine.resources import host_limits


def host_info(engine_counts: dict[str, int], data_root: str, name: str) -> dict[str, Any]:
    """``/info``: ``engine_counts`` has ``containers``/``running``/``stopped``/``images``."""
    uname = platform.uname()
    mem = _mem_total()
    info: dict[str, Any] = {
        "ID": name,
        "Containers": engine_counts.get("containers", 0),
        "ContainersRunning": engine_counts.get("running", 0),
        "ContainersPaused": 0,
        "ContainersStopped": engine_counts.get("stopped", 0),
        "Images": engine_counts.get("images", 0),
    }
    info.update(_drivers_and_limits())
    info["NFd"] = len(os.listdir("/proc/self/fd"))
    info.update(_system(uname, mem, data_root))
    info.update(_runtime())
    return info


def _mem_total() -> int:
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    return mem


def _drivers_and_limits() -> dict[str, Any]:
    host = host_limits()  # P3 (issue 16): the cgroup controls containers get
    return {
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {
            "Volume": [],
            "Network": ["bridge", "host", "macvlan", "null", "overlay"],
            "Authorization": None,
            "Log": ["k8s-file"],
        },
        "MemoryLimit": True,
        "SwapLimit": host.swap_limit,
        "KernelMemory": False,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": False,
    }


def _system(uname: platform.uname_result, mem: int, data_root: str) -> dict[str, Any]:
    return {
        "OomKillDisable": True,
        "NGoroutines": 0,
        "SystemTime": "",
        "LoggingDriver": "k8s-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "1",
        "NEventsListener": 0,
        "KernelVersion": uname.release,
        "OperatingSystem": "Tether on " + uname.system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": uname.machine,
        "IndexServerAddress": "",
        "RegistryConfig": None,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem,
        "GenericResources": None,
        "DockerRootDir": data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": uname.node,
        "Labels": [],
    }


def _runtime() -> dict[str, Any]:
    return {
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": {"runc": {"path": "runc"}},
        "DefaultRuntime": "runc",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": [],
        "Warnings": None,
    }
